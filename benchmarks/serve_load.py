"""Serving under load: cvpipe serve (ONNX Runtime + micro-batching) vs the limits.

Builds a small real classifier run (ResNet-18, random init, 224 px, 5 classes), exports it
to ONNX, then on loopback only (127.0.0.1):

1. **limit**: in-process ONNX Runtime throughput of the whole pipeline (JPEG decode,
   preprocessing, batched inference) for the same model and images;
2. **cvpipe serve**: ``C`` concurrent clients POST the JPEG to ``/v1/predict`` for ``T``
   seconds; counts 5xx, p50/p99 latency, throughput, server RSS at start and end;
3. **baseline**: a plain FastAPI server calling eager PyTorch one image at a time, same
   load.

Targets: zero 5xx, RSS steady, cvpipe >= 80% of the in-process limit and >= 2x the
baseline.

    python benchmarks/serve_load.py            # 16 clients x 60 s per server
    python benchmarks/serve_load.py --quick    # 16 clients x 10 s
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import parser, report
from fastapi import Request  # noqa: F401 - resolves the baseline endpoint's annotation
from PIL import Image

HOST = "127.0.0.1"
INPUT = int(os.environ.get("SERVE_LOAD_INPUT", "224"))
CLASSES = ["1", "2", "3", "4", "5"]


def make_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640]
    base = (np.sin(xx / 23) + np.cos(yy / 17)) * 60 + 128
    arr = np.stack([base + rng.normal(0, 20, base.shape) for _ in range(3)], -1)
    buf = io.BytesIO()
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_run(root: Path) -> Path:
    import torch

    from cvpipe.engine.checkpoint import save_checkpoint
    from cvpipe.engine.runs import ModelCard
    from cvpipe.export.onnx import export_onnx
    from cvpipe.models.classification import create_classifier
    from cvpipe.models.heads import HeadSpec

    torch.manual_seed(0)
    run = root / "run"
    net = create_classifier(
        "resnet18", num_classes=len(CLASSES), weights=None, input_size=INPUT, head=HeadSpec()
    )
    ModelCard(
        task="count",
        classes=CLASSES,
        model="resnet18",
        head={},
        preprocess=net.preprocess,
        input_size=INPUT,
    ).save(run / "model_card.json")
    meta = {"task": "count", "classes": CLASSES, "model": "resnet18"}
    save_checkpoint(run / "checkpoints" / "best.pt", {"model": net.state_dict(), "epoch": 1}, meta)
    res = export_onnx(run)
    print(f"exported {res.path} (max |diff| {res.max_abs_diff:.2e})", flush=True)
    return run


def in_process_limit(
    run: Path, jpeg: bytes, seconds: float, threads: int, batch: int = 16
) -> float:
    """Images/s of decode + preprocess + ORT in batches, in this process."""
    from cvpipe.serve.runtime import load_runtime
    from cvpipe.serve.security import decode_image

    rt = load_runtime(run, threads=threads)
    rt.run([rt.prepare(decode_image(jpeg, 10**8, rt.draft).image)])
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        xs = [rt.prepare(decode_image(jpeg, 10**8, rt.draft).image) for _ in range(batch)]
        rt.run(xs)
        n += batch
    return n / (time.perf_counter() - t0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], port: int) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
            )
        try:
            if httpx.get(f"http://{HOST}:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready")


def rss_mb(pid: int) -> float:
    import psutil

    p = psutil.Process(pid)
    return sum(c.memory_info().rss for c in [p, *p.children(recursive=True)]) / 2**20


async def load(url: str, jpeg: bytes, clients: int, seconds: float) -> dict[str, float]:
    import httpx

    lat: list[float] = []
    codes: dict[int, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        end = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                r = await http.post(url, content=jpeg, headers={"content-type": "image/jpeg"})
                lat.append(time.perf_counter() - t0)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - t0
    a = np.array(lat) * 1000
    return {
        "requests": len(lat),
        "throughput": len(lat) / wall,
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "5xx": sum(n for c, n in codes.items() if c >= 500),
        "non_200": sum(n for c, n in codes.items() if c != 200),
    }


def serve_and_load(
    cmd: list[str], port: int, path: str, jpeg: bytes, clients: int, seconds: float
) -> dict[str, float]:
    proc = start(cmd, port)
    try:
        url = f"http://{HOST}:{port}{path}"
        asyncio.run(load(url, jpeg, clients, min(2.0, seconds / 5)))  # warm-up
        rss0 = rss_mb(proc.pid)
        res = asyncio.run(load(url, jpeg, clients, seconds))
        res["rss_start_mb"] = rss0
        res["rss_end_mb"] = rss_mb(proc.pid)
        return res
    finally:
        proc.terminate()
        proc.wait(10)


def baseline_server(run: str, port: int) -> None:
    """A plain FastAPI app: eager PyTorch, one image per request, on the event loop."""
    import torch
    import uvicorn
    from fastapi import FastAPI

    from cvpipe.inference.loading import load_model

    net, card = load_model(run)
    tf = card.preprocess.eval_transform()
    app = FastAPI()

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, object]:  # noqa: F821 - module-level import
        im = Image.open(io.BytesIO(await request.body())).convert("RGB")
        with torch.inference_mode():
            p = net(tf(im).unsqueeze(0)).softmax(1)[0]
        i = int(p.argmax())
        return {"label": card.classes[i], "score": float(p[i])}

    uvicorn.run(app, host=HOST, port=port, log_level="warning")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--input-size", type=int, default=None, help="model input side (default 224)")
    p.add_argument("--baseline-server", nargs=2, metavar=("RUN", "PORT"), help=argparse_hidden())
    args = p.parse_args()
    if args.baseline_server:
        baseline_server(args.baseline_server[0], int(args.baseline_server[1]))
        return
    if args.input_size:
        global INPUT
        INPUT = args.input_size
        os.environ["SERVE_LOAD_INPUT"] = str(INPUT)
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    cpus = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        run = make_run(Path(tmp))
        jpeg = make_jpeg()
        limit = in_process_limit(run, jpeg, min(seconds, 10.0), threads=cpus)
        print(f"in-process ONNX Runtime: {limit:.1f} img/s", flush=True)
        port = free_port()
        cv = serve_and_load(
            [sys.executable, "-m", "cvpipe.cli.main", "serve", str(run), "--port", str(port)],
            port,
            "/v1/predict",
            jpeg,
            args.clients,
            seconds,
        )
        print(f"cvpipe serve: {json.dumps(cv)}", flush=True)
        port = free_port()
        base = serve_and_load(
            [sys.executable, __file__, "--baseline-server", str(run), str(port)],
            port,
            "/predict",
            jpeg,
            args.clients,
            seconds,
        )
        print(f"baseline: {json.dumps(base)}", flush=True)
    figures = {
        "throughput_rps": round(cv["throughput"], 1),
        "vs_in_process": round(cv["throughput"] / limit, 2),
        "vs_eager_baseline": round(cv["throughput"] / base["throughput"], 2),
        "p50_ms": round(cv["p50_ms"], 1),
        "p99_ms": round(cv["p99_ms"], 1),
        "errors_5xx": cv["5xx"],
        "rss_growth_mb": round(cv["rss_end_mb"] - cv["rss_start_mb"], 1),
    }
    details = {
        "clients": args.clients,
        "seconds": seconds,
        "cpus": cpus,
        "model": f"resnet18 {INPUT}px (onnx fp32)",
        "image": "640x480 JPEG",
        "in_process_img_s": limit,
        "cvpipe": cv,
        "baseline_eager_fastapi": base,
        "targets": {"vs_in_process": ">= 0.8", "vs_eager_baseline": ">= 2", "errors_5xx": 0},
    }
    report("serve_load", figures, details)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
