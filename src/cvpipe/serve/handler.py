"""AWS Lambda entry point behind API Gateway: ``cvpipe.serve.handler.handler``.

Set the function's handler to ``cvpipe.serve.handler.handler`` and ``CVPIPE_MODEL`` to
the model inside the image/package (a ``model.onnx`` exported by ``cvpipe export``, or a
run directory). The model loads once per container (on the first invocation) and is
reused by later ones. Other settings come from ``CVPIPE_*`` variables
(:meth:`ServeSettings.from_env`: ``CVPIPE_ALLOW_URLS=1``, ``CVPIPE_MAX_PIXELS``, ...).

Accepted events:

- API Gateway REST (payload v1: ``httpMethod``, ``headers``, ``body``,
  ``isBase64Encoded``) and HTTP API (payload v2: ``version: "2.0"``,
  ``requestContext.http``) proxy events, whose body is either the image (binary media
  types make API Gateway send it base64-encoded with ``isBase64Encoded: true``) or JSON
  ``{"url": ...}`` / ``{"image_b64": ...}``;
- a direct invocation with the JSON itself: ``{"url": ...}`` or ``{"image_b64": ...}``.

Proxy events get a proxy response ``{"statusCode", "headers", "body": JSON,
"isBase64Encoded": false}`` with the same JSON as ``POST /v1/predict``; errors are the
same ``{"error": {...}}`` bodies with their 4xx status. Direct invocations get the JSON
object itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from cvpipe.serve.security import ApiError, check_token
from cvpipe.serve.service import Service, parse_json_object
from cvpipe.serve.settings import ServeSettings

log = logging.getLogger(__name__)

ENV_MODEL = "CVPIPE_MODEL"
_lock = threading.Lock()
_service: Service | None = None


def get_service() -> Service:
    """The container's service, loaded from ``CVPIPE_MODEL`` on first use.

    Raises:
        ApiError: 500 when ``CVPIPE_MODEL`` is unset (a deployment mistake).
    """
    global _service
    with _lock:
        if _service is None:
            from cvpipe.serve.runtime import load_runtime

            source = os.environ.get(ENV_MODEL)
            if not source:
                raise ApiError(
                    500, "not_configured", f"set {ENV_MODEL} to a model.onnx or run directory"
                )
            settings = ServeSettings.from_env()
            t0 = time.perf_counter()
            _service = Service(load_runtime(source, threads=settings.threads), settings)
            log.info("loaded %s in %.2f s", source, time.perf_counter() - t0)
        return _service


def set_service(service: Service | None) -> None:
    """Replace the container's service (tests; warm-up code)."""
    global _service
    with _lock:
        _service = service


def _headers(event: Mapping[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}


def _response(status: int, body: dict[str, Any], rid: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "x-request-id": rid},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _proxy_body(event: Mapping[str, Any]) -> bytes:
    raw = event.get("body")
    if raw is None:
        return b""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(
                400, "invalid_base64", f"isBase64Encoded body is not base64: {exc}"
            ) from None
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def handle_proxy(event: Mapping[str, Any], service: Service, rid: str) -> dict[str, Any]:
    """One API Gateway proxy event (v1 or v2) → the prediction JSON.

    Raises:
        ApiError: refused inputs (same rules as the REST server).
    """
    headers = _headers(event)
    check_token(headers.get("authorization"), service.settings.token)
    method = event.get("httpMethod") or ((event.get("requestContext") or {}).get("http") or {}).get(
        "method"
    )
    if method and str(method).upper() != "POST":
        raise ApiError(405, "method_not_allowed", f"{method}: send the image with POST")
    query = event.get("queryStringParameters") or {}
    body = _proxy_body(event)
    if len(body) > service.settings.max_body_bytes:
        raise ApiError(
            413,
            "body_too_large",
            f"the body is larger than {service.settings.max_body_bytes} bytes",
        )
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or (not ctype and body[:1] == b"{"):
        return service.predict(json_body=parse_json_object(body), query=query)
    return service.predict(data=body, query=query)


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda handler (see the module docstring for events and responses)."""
    rid = getattr(context, "aws_request_id", None) or uuid.uuid4().hex
    proxy = isinstance(event, Mapping) and (
        "body" in event or "httpMethod" in event or "requestContext" in event
    )
    try:
        service = get_service()
        if proxy:
            result = handle_proxy(event, service, rid)
        elif isinstance(event, Mapping):
            result = service.predict(json_body=event)
        else:
            raise ApiError(400, "invalid_json", "the event must be a JSON object")
        result["request_id"] = rid
        return _response(200, result, rid) if proxy else result
    except ApiError as exc:
        body = {
            "error": {
                "status": exc.status,
                "code": exc.code,
                "message": exc.message,
                "request_id": rid,
            }
        }
        log.info("request %s refused: %d %s", rid, exc.status, exc.code)
        return _response(exc.status, body, rid) if proxy else body
    except Exception:
        log.exception("request %s failed", rid)
        body = {
            "error": {
                "status": 500,
                "code": "internal_error",
                "message": "prediction failed",
                "request_id": rid,
            }
        }
        return _response(500, body, rid) if proxy else body
