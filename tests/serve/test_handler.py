"""The Lambda handler with recorded API Gateway event shapes (REST v1, HTTP API v2, direct)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.serve.conftest import image_bytes

from cvpipe.serve import handler as h
from cvpipe.serve.runtime import load_runtime
from cvpipe.serve.service import Service
from cvpipe.serve.settings import ServeSettings


def rest_v1(
    body: bytes | str, *, b64: bool, ctype: str, method: str = "POST", headers: dict | None = None
) -> dict:
    """An API Gateway REST API (payload 1.0) proxy event, as recorded from the console test."""
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": method,
        "headers": {
            "Content-Type": ctype,
            "Host": "abc123.execute-api.eu-west-1.amazonaws.com",
            **(headers or {}),
        },
        "multiValueHeaders": {"Content-Type": [ctype]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/predict",
            "httpMethod": method,
            "stage": "prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.7"},
        },
        "body": base64.b64encode(body).decode() if b64 else body,
        "isBase64Encoded": b64,
    }


def http_v2(body: bytes | str, *, b64: bool, ctype: str, query: dict | None = None) -> dict:
    """An API Gateway HTTP API (payload 2.0) proxy event."""
    return {
        "version": "2.0",
        "routeKey": "POST /predict",
        "rawPath": "/predict",
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": {"content-type": ctype, "host": "abc123.execute-api.eu-west-1.amazonaws.com"},
        **({"queryStringParameters": query} if query else {}),
        "requestContext": {
            "http": {
                "method": "POST",
                "path": "/predict",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "stage": "$default",
        },
        "body": base64.b64encode(body).decode() if b64 else body,
        "isBase64Encoded": b64,
    }


@pytest.fixture
def service(served_run: Path):
    svc = Service(load_runtime(served_run), ServeSettings())
    h.set_service(svc)
    yield svc
    h.set_service(None)


CTX = SimpleNamespace(aws_request_id="req-1")


def test_rest_v1_base64_image(service) -> None:
    resp = h.handler(rest_v1(image_bytes(), b64=True, ctype="image/jpeg"), CTX)
    assert resp["statusCode"] == 200 and resp["isBase64Encoded"] is False
    body = json.loads(resp["body"])
    assert (
        body["task"] == "classify"
        and body["label"] in ("a", "b", "c")
        and body["request_id"] == "req-1"
    )
    assert resp["headers"]["content-type"] == "application/json"


def test_http_v2_base64_image_and_query(service) -> None:
    resp = h.handler(
        http_v2(image_bytes(), b64=True, ctype="image/jpeg", query={"top_k": "1"}), CTX
    )
    body = json.loads(resp["body"])
    assert resp["statusCode"] == 200 and len(body["top_k"]) == 1


def test_json_bodies(service) -> None:
    b64 = base64.b64encode(image_bytes()).decode()
    resp = h.handler(
        http_v2(json.dumps({"image_b64": b64}), b64=False, ctype="application/json"), CTX
    )
    assert resp["statusCode"] == 200
    url = h.handler(
        rest_v1(
            json.dumps({"url": "https://example.com/a.jpg"}), b64=False, ctype="application/json"
        ),
        CTX,
    )
    assert url["statusCode"] == 403 and json.loads(url["body"])["error"]["code"] == "urls_disabled"
    direct = h.handler({"image_b64": b64}, CTX)
    assert direct["label"] in ("a", "b", "c")
    assert h.handler({"url": "http://169.254.169.254/"}, CTX)["error"]["status"] == 403


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (rest_v1(b"", b64=True, ctype="image/jpeg"), 400),
        (rest_v1(b"plain text", b64=True, ctype="image/jpeg"), 415),
        (rest_v1("not base64!!", b64=False, ctype="image/jpeg"), 415),
        (dict(rest_v1(b"x", b64=True, ctype="image/jpeg"), body="%%%"), 400),
        (rest_v1(b"{}", b64=False, ctype="application/json"), 422),
        (rest_v1(b'{"foo": 1}', b64=False, ctype="application/json"), 422),
        (rest_v1(image_bytes(), b64=True, ctype="image/jpeg", method="GET"), 405),
    ],
)
def test_bad_events(service, event: dict, status: int) -> None:
    resp = h.handler(event, CTX)
    assert resp["statusCode"] == status, resp["body"]
    err = json.loads(resp["body"])["error"]
    assert err["request_id"] == "req-1" and "Traceback" not in resp["body"]


def test_token(served_run: Path) -> None:
    h.set_service(Service(load_runtime(served_run), ServeSettings(token="t0k")))
    try:
        ev = rest_v1(image_bytes(), b64=True, ctype="image/jpeg")
        assert h.handler(ev, CTX)["statusCode"] == 401
        ev["headers"]["Authorization"] = "Bearer t0k"
        assert h.handler(ev, CTX)["statusCode"] == 200
    finally:
        h.set_service(None)


def test_model_loaded_once_from_env(served_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h.set_service(None)
    calls = []
    import cvpipe.serve.runtime as rt

    orig = rt.load_runtime

    def counting(source, **kw):
        calls.append(source)
        return orig(source, **kw)

    monkeypatch.setattr(rt, "load_runtime", counting)
    monkeypatch.delenv(h.ENV_MODEL, raising=False)
    assert h.handler({"image_b64": "AA=="}, CTX)["error"]["status"] == 500  # not configured
    monkeypatch.setenv(h.ENV_MODEL, str(served_run))
    monkeypatch.setenv("CVPIPE_TOP_K", "2")
    try:
        for _ in range(3):
            resp = h.handler(rest_v1(image_bytes(), b64=True, ctype="image/jpeg"), CTX)
            assert resp["statusCode"] == 200 and len(json.loads(resp["body"])["top_k"]) == 2
        assert calls == [str(served_run)]
    finally:
        h.set_service(None)
