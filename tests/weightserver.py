"""A real HTTP server on 127.0.0.1 standing in for the internet in weights-download tests.

Routes map a URL path to a :class:`Route`: a body served with ``Range`` support, or an
error status, a redirect, a truncated body (Content-Length says more than is sent), or a
stall after some bytes (for read timeouts). Every request is recorded (path, Range header).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    location: str = ""  # redirect target (status 301/302)
    headers: dict[str, str] = field(default_factory=dict)
    cut_at: int | None = None  # send only this many bytes, then close (truncated)
    stall_at: int | None = None  # send this many bytes, then sleep `stall_s`
    stall_s: float = 5.0
    ignore_range: bool = False


class WeightServer:
    """A threaded ``http.server`` serving :class:`Route`s; ``url(path)`` gives the address."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.requests.append((self.path, self.headers.get("Range")))
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404, "Not Found")
                    return
                if route.location:
                    self.send_response(route.status)
                    self.send_header("Location", route.location)
                    for k, v in route.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.status != 200:
                    self.send_error(route.status)
                    return
                body, start = route.body, 0
                rng = self.headers.get("Range")
                if rng and not route.ignore_range and rng.startswith("bytes="):
                    start = int(rng[len("bytes=") :].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                for k, v in route.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:]
                if route.cut_at is not None:
                    self.wfile.write(chunk[: route.cut_at])
                    self.close_connection = True
                    return
                if route.stall_at is not None:
                    self.wfile.write(chunk[: route.stall_at])
                    self.wfile.flush()
                    time.sleep(route.stall_s)
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def serve(self, path: str, body: bytes, **kw: Any) -> str:
        self.routes["/" + path.lstrip("/")] = Route(body=body, **kw)
        return self.url(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def weight_server() -> Iterator[WeightServer]:
    server = WeightServer()
    try:
        yield server
    finally:
        server.close()


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def publish(
    monkeypatch: pytest.MonkeyPatch,
    server: WeightServer,
    arch: str,
    state: dict[str, Any],
    tag: str | None = None,
    half: bool = False,
) -> str:
    """Serve ``state`` as ``arch``'s published torchvision file (entry ``tag``, default
    ``DEFAULT``) from a loopback mirror, downloads on (``CVPIPE_WEIGHTS_URL``).

    The file name carries the sha256 prefix of the served bytes, as torchvision's do, so
    the download's hash check is the real one. Returns the file name.
    """
    import hashlib
    import io

    import torch

    from cvpipe.models import published

    buf = io.BytesIO()
    torch.save(
        {k: (v.half() if half and v.is_floating_point() else v) for k, v in state.items()}, buf
    )
    body = buf.getvalue()
    name = f"{arch}{'_coco' if tag else ''}-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    server.serve(f"mirror/{name}", body)
    real = published.torchvision_urls
    table = getattr(published.torchvision_urls, "_fake_table", None)
    if table is None:
        table = {}

        def fake(a: str, t: str | None = None) -> list[str]:
            return [table[(a, t)]] if (a, t) in table else real(a, t)

        fake._fake_table = table  # type: ignore[attr-defined]
        monkeypatch.setattr(published, "torchvision_urls", fake)
    table[(arch, tag)] = f"https://download.pytorch.org/models/{name}"
    monkeypatch.setenv("CVPIPE_WEIGHTS_URL", server.url("mirror"))
    monkeypatch.delenv("CVPIPE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("CVPIPE_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("CVPIPE_READ_TIMEOUT", "5")
    return name
