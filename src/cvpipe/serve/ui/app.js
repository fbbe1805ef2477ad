// cvpipe demo page: send an image to /v1/predict, draw boxes or class bars.
// Plain browser JavaScript, no external scripts; everything runs from this server.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];
  const state = { model: null, result: null, image: null, token: sessionStorage.getItem("cvpipe-token") || "" };

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (state.token) h["Authorization"] = "Bearer " + state.token;
    return h;
  }

  function setStatus(text, isError) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("error", !!isError);
  }

  async function loadModel() {
    const r = await fetch("/v1/model", { headers: headers() });
    if (r.status === 401) {
      $("token-row").hidden = false;
      $("model-name").textContent = "token required";
      setStatus("This server needs an access token.", true);
      return;
    }
    if (!r.ok) { setStatus("Cannot read the model card (HTTP " + r.status + ").", true); return; }
    state.model = await r.json();
    const m = state.model;
    $("model-name").textContent = m.model + " · " + m.task + " · " + m.classes.length + " classes · " + m.backend;
    $("card").textContent = JSON.stringify(m, null, 2);
    $("url-form").hidden = !(m.limits && m.limits.allow_urls);
    const t = m.task === "detect" ? m.limits.score_threshold : 0;
    $("threshold").value = t;
    $("threshold-value").textContent = Number(t).toFixed(2);
  }

  async function send(body, contentType, previewUrl) {
    if (!state.model) await loadModel();
    if (!state.model) return;
    setStatus("Predicting…");
    const n = state.model.classes.length;
    const q = "?min_score=0&top_k=" + n;
    const t0 = performance.now();
    let r;
    try {
      r = await fetch("/v1/predict" + q, { method: "POST", headers: headers({ "Content-Type": contentType }), body: body });
    } catch (e) {
      setStatus("The server cannot be reached: " + e, true);
      return;
    }
    const total = performance.now() - t0;
    const data = await r.json().catch(() => null);
    if (!r.ok) {
      const msg = data && data.error ? data.error.message : "HTTP " + r.status;
      setStatus("Refused (" + r.status + "): " + msg, true);
      return;
    }
    state.result = data;
    $("latency").hidden = false;
    $("lat-total").textContent = total.toFixed(1) + " ms";
    $("lat-decode").textContent = (data.timing_ms.decode || 0).toFixed(1) + " ms";
    $("lat-model").textContent = (data.timing_ms.model || 0).toFixed(1) + " ms";
    if (previewUrl) await showImage(previewUrl);
    render();
    setStatus("Done: " + summaryText());
  }

  function showImage(url) {
    return new Promise((resolve) => {
      const img = new Image();
      img.onload = () => { state.image = img; resolve(); };
      img.onerror = () => { state.image = null; resolve(); };
      img.src = url;
    });
  }

  function threshold() { return Number($("threshold").value); }

  function summaryText() {
    const d = state.result;
    if (!d) return "";
    if (d.task === "detect") {
      const kept = d.detections.filter((x) => x.score >= threshold());
      const counts = {};
      kept.forEach((x) => { counts[x.label] = (counts[x.label] || 0) + 1; });
      const parts = Object.keys(counts).map((k) => counts[k] + " × " + k);
      return kept.length + " object(s)" + (parts.length ? ": " + parts.join(", ") : "");
    }
    if (d.task === "count") return "count " + d.count + " (p = " + d.score.toFixed(3) + ")";
    return d.label + " (p = " + d.score.toFixed(3) + ")";
  }

  function render() {
    const d = state.result;
    if (!d) return;
    drawCanvas(d);
    const bars = $("bars");
    bars.innerHTML = "";
    const list = $("det-list");
    list.innerHTML = "";
    const t = threshold();
    if (d.task === "detect") {
      d.detections.filter((x) => x.score >= t).forEach((x) => {
        const li = document.createElement("li");
        li.textContent = x.label + " " + x.score.toFixed(2) + " [" + x.box.map((v) => Math.round(v)).join(", ") + "]";
        list.appendChild(li);
      });
    } else {
      const rows = d.task === "count"
        ? d.distribution.map((x) => ({ label: String(x.count), score: x.prob }))
        : d.top_k;
      rows.forEach((x) => {
        const li = document.createElement("li");
        li.className = "bar" + (x.score < t ? " below" : "");
        li.dataset.label = x.label;
        const name = document.createElement("span");
        name.textContent = x.label;
        const track = document.createElement("span");
        track.className = "track";
        const fill = document.createElement("span");
        fill.className = "fill";
        fill.style.display = "block";
        fill.style.width = (100 * x.score).toFixed(1) + "%";
        track.appendChild(fill);
        const val = document.createElement("span");
        val.className = "val";
        val.textContent = (100 * x.score).toFixed(1) + "%";
        li.append(name, track, val);
        li.setAttribute("aria-label", x.label + ": " + (100 * x.score).toFixed(1) + " percent");
        bars.appendChild(li);
      });
    }
    $("summary").textContent = summaryText();
  }

  function drawCanvas(d) {
    const canvas = $("canvas");
    const img = state.image;
    $("figure").hidden = !img;
    if (!img) return;
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    if (d.task !== "detect") return;
    const t = threshold();
    const lw = Math.max(2, Math.round(Math.min(canvas.width, canvas.height) / 150));
    ctx.font = Math.max(12, lw * 6) + "px system-ui, sans-serif";
    ctx.textBaseline = "top";
    const classes = state.model ? state.model.classes : [];
    d.detections.filter((x) => x.score >= t).forEach((x) => {
      const [nx1, ny1, nx2, ny2] = x.box_norm;
      const x1 = nx1 * canvas.width, y1 = ny1 * canvas.height;
      const w = (nx2 - nx1) * canvas.width, h = (ny2 - ny1) * canvas.height;
      const color = COLORS[Math.max(0, classes.indexOf(x.label)) % COLORS.length];
      ctx.strokeStyle = color;
      ctx.lineWidth = lw;
      ctx.strokeRect(x1, y1, w, h);
      const text = x.label + " " + x.score.toFixed(2);
      const tw = ctx.measureText(text).width + 8;
      const th = lw * 6 + 6;
      ctx.fillStyle = color;
      ctx.fillRect(x1, Math.max(0, y1 - th), tw, th);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, x1 + 4, Math.max(0, y1 - th) + 3);
    });
  }

  function sendFile(file) {
    if (!file) return;
    const url = URL.createObjectURL(file);
    send(file, file.type || "application/octet-stream", url);
  }

  const drop = $("drop-zone");
  drop.addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (e) => sendFile(e.target.files[0]));
  ["dragenter", "dragover"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => sendFile(e.dataTransfer.files[0]));
  $("threshold").addEventListener("input", () => {
    $("threshold-value").textContent = threshold().toFixed(2);
    render();
    if (state.result) setStatus("Done: " + summaryText());
  });
  $("url-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const u = $("url-input").value;
    send(JSON.stringify({ url: u }), "application/json", u);
  });
  $("token-save").addEventListener("click", () => {
    state.token = $("token-input").value;
    sessionStorage.setItem("cvpipe-token", state.token);
    $("token-row").hidden = true;
    setStatus("Token set.");
    loadModel();
  });
  loadModel().catch((e) => setStatus("Cannot reach the server: " + e, true));
})();
