"""Request guards: tokens, magic bytes, pixel limits, address checks, URL fetching via a loopback stub."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from tests.serve.conftest import image_bytes
from tests.serve.test_app import png_bomb

from cvpipe.serve import security
from cvpipe.serve.app import create_app
from cvpipe.serve.security import (
    ApiError,
    address_allowed,
    check_token,
    check_url,
    decode_image,
    fetch_url,
    sniff_image_type,
)
from cvpipe.serve.settings import ServeSettings


def test_check_token() -> None:
    check_token(None, None)
    check_token("Bearer abc", "abc")
    check_token("bearer abc", "abc")
    for header in (None, "", "Bearer", "Bearer abd", "Basic abc", "abc"):
        with pytest.raises(ApiError) as e:
            check_token(header, "abc")
        assert e.value.status == 401


def test_sniff() -> None:
    assert sniff_image_type(image_bytes(fmt="JPEG"))[0] == "JPEG"
    assert sniff_image_type(image_bytes(fmt="PNG"))[0] == "PNG"
    assert sniff_image_type(image_bytes(fmt="WEBP"))[0] == "WEBP"
    assert sniff_image_type(b"<html>") is None and sniff_image_type(b"") is None


def test_decode_limits() -> None:
    img = decode_image(image_bytes((40, 30)), max_pixels=40 * 30)
    assert (img.width, img.height, img.image.mode) == (40, 30, "RGB")
    with pytest.raises(ApiError) as e:
        decode_image(image_bytes((40, 30)), max_pixels=40 * 30 - 1)
    assert e.value.status == 413
    with pytest.raises(ApiError) as e:
        decode_image(png_bomb(), max_pixels=10**12)  # Pillow's own bomb guard still applies
    assert e.value.status == 413
    with pytest.raises(ApiError) as e:
        decode_image(png_bomb(), max_pixels=40_000_000)
    assert e.value.code == "too_many_pixels"
    with pytest.raises(ApiError) as e:
        decode_image(b"\x89PNG\r\n\x1a\n garbage", 100)
    assert e.value.status == 422


def test_draft_decode_keeps_declared_size() -> None:
    img = decode_image(image_bytes((640, 480)), 10**7, draft=64)
    assert (img.width, img.height) == (640, 480) and img.image.size[0] < 640


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd00:ec2::254", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_address_allowed(ip: str, allowed: bool) -> None:
    assert address_allowed(ipaddress.ip_address(ip)) is allowed


def test_check_url() -> None:
    public = lambda host, port: ["93.184.216.34"]  # noqa: E731
    assert check_url("https://images.example.com/a.jpg", public) == (
        "https",
        "images.example.com",
        443,
        "93.184.216.34",
    )
    for url in (
        "ftp://x.example/a",
        "file:///etc/passwd",
        "http://user:pw@x.example/",
        "http:///a",
        "http://metadata.google.internal/",
    ):
        with pytest.raises(ApiError) as e:
            check_url(url, public)
        assert e.value.status == 400, url
    rebinding = lambda host, port: ["93.184.216.34", "127.0.0.1"]  # noqa: E731
    with pytest.raises(ApiError, match="non-public"):
        check_url("http://evil.example/", rebinding)

    def fails(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(ApiError) as e:
        check_url("http://nowhere.example/", fails)
    assert e.value.code == "unresolvable_host"


# -- a loopback stub server ---------------------------------------------------------------


class _Stub(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.path)
        if self.path == "/slow":
            time.sleep(1.5)
        status, headers, body = self.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    """A stub at http://stub.test:PORT resolving to 127.0.0.1; only that address is let through."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    _Stub.seen = []
    _Stub.routes = {
        "/img.jpg": (200, {"Content-Type": "image/jpeg"}, image_bytes()),
        "/to-private": (302, {"Location": "http://10.0.0.1/secret.jpg"}, b""),
        "/to-metadata": (301, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/to-img": (307, {"Location": "/img.jpg"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/big": (200, {}, b"\xff\xd8\xff" + b"\0" * 300_000),
        "/slow": (200, {}, image_bytes()),
        "/err": (500, {}, b"boom"),
    }
    real = security.address_allowed
    loop = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(security, "address_allowed", lambda ip: ip == loop or real(ip))

    def resolver(host: str, port_: int) -> list[str]:
        assert host == "stub.test", f"unexpected lookup {host}"  # nothing but the stub is contacted
        return ["127.0.0.1"]

    yield f"http://stub.test:{port}", resolver
    server.shutdown()
    server.server_close()


def test_fetch_follows_redirects_and_checks_each_hop(stub) -> None:
    base, resolver = stub
    s = ServeSettings(allow_urls=True, url_timeout_s=1.0, url_max_mb=0.2)
    assert fetch_url(f"{base}/img.jpg", s, resolver)[:3] == b"\xff\xd8\xff"
    assert fetch_url(f"{base}/to-img", s, resolver)[:3] == b"\xff\xd8\xff"
    for path in ("/to-private", "/to-metadata"):
        with pytest.raises(ApiError) as e:
            fetch_url(f"{base}{path}", s, resolver)
        assert (e.value.status, e.value.code) == (400, "forbidden_address"), path
    expected = {
        "/loop": (400, "too_many_redirects"),
        "/big": (413, "download_too_large"),
        "/slow": (504, "upstream_timeout"),
        "/err": (502, "bad_upstream"),
    }
    for path, want in expected.items():
        with pytest.raises(ApiError) as e:
            fetch_url(f"{base}{path}", s, resolver)
        assert (e.value.status, e.value.code) == want, path
    assert _Stub.seen.count("/loop") == s.url_max_redirects + 1
    with pytest.raises(ApiError) as e:
        fetch_url(f"{base}/img.jpg", ServeSettings(), resolver)
    assert e.value.status == 403


def test_server_url_requests_through_stub(served_run, stub) -> None:
    base, resolver = stub
    app = create_app(
        served_run, ServeSettings(allow_urls=True, url_timeout_s=1.0), resolver=resolver
    )
    with TestClient(app) as c:
        good = c.post("/v1/predict", json={"url": f"{base}/to-img"})
        assert good.status_code == 200 and good.json()["label"] in ("a", "b", "c")
        bad = c.post("/v1/predict", json={"url": f"{base}/to-private"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "forbidden_address"
        assert c.post("/v1/predict", json={"url": f"{base}/img.jpg"}).status_code == 200
