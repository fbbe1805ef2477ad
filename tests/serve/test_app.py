"""The REST app through a real client: routes, task responses, bad inputs, metrics, auth."""

from __future__ import annotations

import base64
import io
import re
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.serve.conftest import image_bytes

from cvpipe.serve import schemas
from cvpipe.serve.app import create_app
from cvpipe.serve.settings import ServeSettings


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A ~100-byte PNG declaring width x height pixels (header + a tiny IDAT)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def client(served_run: Path):
    with TestClient(
        create_app(served_run, ServeSettings(allow_urls=True)), raise_server_exceptions=False
    ) as c:
        yield c


def ok(c: TestClient) -> None:
    r = c.post("/v1/predict", content=image_bytes(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text


def test_predict_raw_multipart_json_agree(client: TestClient) -> None:
    jpg = image_bytes()
    raw = client.post("/v1/predict", content=jpg, headers={"content-type": "image/jpeg"})
    assert raw.status_code == 200
    body = raw.json()
    schemas.Prediction.model_validate(body)
    assert body["task"] == "classify" and body["label"] in ("a", "b", "c")
    assert body["image"] == {"width": 48, "height": 36, "format": "JPEG"}
    assert len(body["top_k"]) == 3 and abs(sum(t["score"] for t in body["top_k"]) - 1) < 1e-4
    assert body["request_id"] == raw.headers["x-request-id"]
    multi = client.post("/v1/predict", files={"file": ("x.bin", jpg, "text/plain")}).json()
    js = client.post("/v1/predict", json={"image_b64": base64.b64encode(jpg).decode()}).json()
    octet = client.post(
        "/v1/predict?top_k=1", content=jpg, headers={"content-type": "application/octet-stream"}
    ).json()
    assert multi["top_k"] == js["top_k"] == body["top_k"]
    assert octet["top_k"] == body["top_k"][:1]


def test_type_from_magic_bytes_not_header(client: TestClient) -> None:
    png = image_bytes(fmt="PNG")
    r = client.post("/v1/predict", content=png, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and r.json()["image"]["format"] == "PNG"


def test_batch_multipart_and_json(client: TestClient) -> None:
    jpg = image_bytes()
    files = [
        ("files", ("a.jpg", jpg, "image/jpeg")),
        ("files", ("b.txt", b"not an image", "image/jpeg")),
    ]
    r = client.post("/v1/predict/batch", files=files)
    assert r.status_code == 200
    res = schemas.BatchResponse.model_validate(r.json()).results
    assert res[0].prediction is not None and res[1].error is not None
    assert res[1].error.status == 415
    js = client.post(
        "/v1/predict/batch",
        json={
            "images": [
                {"image_b64": base64.b64encode(jpg).decode()},
                {"url": "http://10.0.0.1/a.jpg"},
                {},
            ]
        },
    ).json()["results"]
    assert js[0]["prediction"]["label"] == res[0].prediction.label
    assert js[1]["error"]["code"] == "forbidden_address" and js[2]["error"]["status"] == 422
    too_many = client.post("/v1/predict/batch", json={"images": [{"image_b64": "AA=="}] * 33})
    assert too_many.status_code == 413


@pytest.mark.parametrize(
    ("name", "kwargs", "status", "code"),
    [
        (
            "empty body",
            {"content": b"", "headers": {"content-type": "image/jpeg"}},
            400,
            "empty_body",
        ),
        (
            "text as image",
            {"content": b"hello, I am text", "headers": {"content-type": "image/png"}},
            415,
            "unsupported_media_type",
        ),
        (
            "text content type",
            {"content": b"abc", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("json without fields", {"json": {"foo": 1}}, 422, "unknown_field"),
        ("json empty object", {"json": {}}, 422, "missing_field"),
        (
            "json both fields",
            {"json": {"url": "http://x.example/a", "image_b64": "AA=="}},
            422,
            "missing_field",
        ),
        ("json not object", {"json": [1, 2]}, 400, "invalid_json"),
        (
            "broken json",
            {"content": b"{nope", "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        ("bad base64", {"json": {"image_b64": "!!!"}}, 400, "invalid_base64"),
        (
            "url loopback",
            {"json": {"url": "http://127.0.0.1:8000/a.jpg"}},
            400,
            "forbidden_address",
        ),
        (
            "url metadata",
            {"json": {"url": "http://169.254.169.254/latest/meta-data/"}},
            400,
            "forbidden_address",
        ),
        ("url private", {"json": {"url": "http://10.0.0.1/a.jpg"}}, 400, "forbidden_address"),
        ("url localhost", {"json": {"url": "http://localhost/a.jpg"}}, 400, "forbidden_address"),
        ("url ipv6 loopback", {"json": {"url": "http://[::1]/a.jpg"}}, 400, "forbidden_address"),
        ("url file scheme", {"json": {"url": "file:///etc/passwd"}}, 400, "bad_url"),
        ("multipart without file", {"data": {"x": "1"}, "files": {}}, 422, "missing_field"),
        (
            "bad top_k",
            {
                "content": b"\xff\xd8\xff",
                "headers": {"content-type": "image/jpeg"},
                "params": {"top_k": "x"},
            },
            422,
            "invalid_field",
        ),
    ],
)
def test_bad_inputs_get_4xx_and_server_keeps_serving(
    client: TestClient, name, kwargs, status, code
) -> None:
    if name == "multipart without file":
        kwargs = {
            "content": b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n',
            "headers": {"content-type": "multipart/form-data; boundary=b"},
        }
    r = client.post("/v1/predict", **kwargs)
    assert r.status_code == status, (name, r.text)
    err = r.json()["error"]
    assert err["code"] == code and err["request_id"] and "Traceback" not in r.text
    ok(client)


def test_truncated_jpeg_and_png_bomb(client: TestClient) -> None:
    jpg = image_bytes((64, 48))
    r = client.post(
        "/v1/predict", content=jpg[: len(jpg) // 2], headers={"content-type": "image/jpeg"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "truncated_image"
    bomb = png_bomb()
    assert len(bomb) < 200
    r = client.post("/v1/predict", content=bomb, headers={"content-type": "image/png"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_pixels"
    ok(client)


def test_body_limit_50mb(client: TestClient) -> None:
    big = b"\xff\xd8\xff" + b"\0" * (50 * 1024 * 1024)
    r = client.post("/v1/predict", content=big, headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks():
        yield b"\xff\xd8\xff"
        for _ in range(12):
            yield b"\0" * (1024 * 1024)

    r = client.post("/v1/predict", content=chunks(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 413  # no Content-Length: counted while reading
    ok(client)


def test_urls_off_by_default(served_run: Path) -> None:
    with TestClient(create_app(served_run)) as c:
        r = c.post("/v1/predict", json={"url": "https://example.com/a.jpg"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "urls_disabled"


def test_auth(served_run: Path) -> None:
    with TestClient(create_app(served_run, ServeSettings(token="s3cret"))) as c:
        jpg = image_bytes()
        assert c.post("/v1/predict", content=jpg).status_code == 401
        wrong = c.post("/v1/predict", content=jpg, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        assert (
            c.post(
                "/v1/predict", content=jpg, headers={"Authorization": "Basic s3cret"}
            ).status_code
            == 401
        )
        assert c.get("/v1/model").status_code == 401 and c.get("/metrics").status_code == 401
        good = c.post("/v1/predict", content=jpg, headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        assert c.get("/").status_code == 200  # the static page; its API calls carry the token


def test_model_health_docs_ui(client: TestClient) -> None:
    info = schemas.ModelInfo.model_validate(client.get("/v1/model").json())
    assert info.task == "classify" and info.classes == ["a", "b", "c"] and info.backend == "pytorch"
    assert info.limits["allow_urls"] is True
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    spec = client.get("/openapi.json").json()
    assert "/v1/predict" in spec["paths"]
    docs = client.get("/docs").text
    assert "/v1/predict/batch" in docs
    for page in (
        docs,
        client.get("/").text,
        client.get("/ui/app.js").text,
        client.get("/ui/style.css").text,
    ):
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no external resources"
        assert "cdn" not in page.lower()
    assert client.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/../app.py").status_code == 404
    r = client.get("/v1/model", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert (
        client.get("/v1/model", headers={"X-Request-ID": "bad id\n"}).headers["x-request-id"]
        != "bad id\n"
    )


def test_metrics_format(client: TestClient) -> None:
    ok(client)
    client.post("/v1/predict", content=b"", headers={"content-type": "image/jpeg"})
    text = client.get("/metrics").text
    line = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+-]+$|^# (HELP|TYPE) .+$')
    for ln in text.strip().splitlines():
        assert line.match(ln), ln
    assert 'cvpipe_requests_total{route="/v1/predict",method="POST",status="200"}' in text
    assert 'cvpipe_errors_total{status="400",code="empty_body"} 1' in text
    assert 'cvpipe_request_duration_seconds_bucket{route="/v1/predict",le="+Inf"}' in text
    assert "cvpipe_model_seconds_count" in text and "# TYPE cvpipe_model_seconds histogram" in text


def test_concurrent_requests_are_batched(served_run: Path) -> None:
    settings = ServeSettings(batch_max=8, batch_wait_ms=20)
    with TestClient(create_app(served_run, settings)) as c:
        jpg = image_bytes()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: c.post("/v1/predict", content=jpg), range(24)))
        assert all(r.status_code == 200 for r in results)
        assert len({r.json()["label"] for r in results}) == 1
        m = re.search(r"cvpipe_model_seconds_count (\d+)", c.get("/metrics").text)
        assert m and int(m.group(1)) < 24  # fewer model runs than requests


def test_count_response(count_run: Path) -> None:
    with TestClient(create_app(count_run)) as c:
        body = c.post("/v1/predict", content=image_bytes()).json()
    assert body["task"] == "count" and body["count"] in (1, 2, 3)
    assert [d["count"] for d in body["distribution"]] == [1, 2, 3]
    assert abs(sum(d["prob"] for d in body["distribution"]) - 1) < 1e-4


def test_detect_response(detect_runtime) -> None:
    with TestClient(create_app(detect_runtime)) as c:
        body = c.post("/v1/predict", content=image_bytes((200, 100))).json()
        low = c.post(
            "/v1/predict?score_threshold=0.25&min_score=0", content=image_bytes((200, 100))
        ).json()
    schemas.Prediction.model_validate(body)
    assert body["task"] == "detect"
    assert [d["label"] for d in body["detections"]] == [
        "burger",
        "fries",
    ]  # min_score 0.05 drops 0.02
    first = body["detections"][0]
    assert first["box"] == [20.0, 20.0, 120.0, 90.0]
    assert first["box_norm"] == [0.1, 0.2, 0.6, 0.9]
    assert body["counts"] == {"burger": 1, "fries": 0}
    assert low["counts"] == {"burger": 1, "fries": 1} and len(low["detections"]) == 3
    assert low["detections"][2]["box"] == [0.0, 0.0, 200.0, 100.0]  # clipped to the image
    assert detect_runtime.predictor.seen[0] == (200, 100)  # detectors get the whole image


def test_not_ready_before_lifespan(served_run: Path) -> None:
    app = create_app(served_run)
    c = TestClient(app)  # no context manager: lifespan not run
    assert c.get("/readyz").status_code == 503
    assert c.post("/v1/predict", content=image_bytes()).status_code == 503


def test_rgba_and_grey_images(client: TestClient) -> None:
    for mode in ("RGBA", "L", "P"):
        buf = io.BytesIO()
        Image.new(mode, (30, 20)).save(buf, "PNG")
        assert client.post("/v1/predict", content=buf.getvalue()).status_code == 200, mode


def test_predict_cli_against_live_server(
    served_run: Path, live_server, tmp_path: Path, capsys
) -> None:
    import json as _json

    from cvpipe.cli.main import main

    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(image_bytes())
    (tmp_path / "imgs" / "b.png").write_bytes(image_bytes(fmt="PNG"))
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"not an image")
    with live_server(create_app(served_run, ServeSettings(token="tk"))) as srv:
        code = main(
            [
                "predict",
                "--server",
                srv.url,
                "--token",
                "tk",
                str(tmp_path / "imgs"),
                "--batch-size",
                "2",
            ]
        )
        rows = [_json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert code == 0 and len(rows) == 3
        good = [r for r in rows if "error" not in r]
        assert len(good) == 2 and all(
            r["class"] in ("a", "b", "c") and len(r["top_k"]) == 3 for r in good
        )
        assert "unsupported_media_type" in next(r for r in rows if "error" in r)["error"]
        assert main(["predict", "--server", srv.url, str(tmp_path / "imgs" / "a.jpg")]) == 2
        assert "401" in capsys.readouterr().err


def test_malloc_arenas_are_capped_on_glibc() -> None:
    import platform

    from cvpipe.serve.app import limit_malloc_arenas
    from cvpipe.serve.settings import ServeSettings

    assert ServeSettings().malloc_arenas == 2
    assert limit_malloc_arenas(0) is False  # 0 leaves glibc's default alone
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt(M_ARENA_MAX) is glibc's")
    assert limit_malloc_arenas(2) is True
