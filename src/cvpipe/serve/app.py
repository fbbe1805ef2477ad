"""The REST API and web page: ``create_app(run_or_model, settings)``.

Endpoints (JSON unless said otherwise; errors are ``{"error": {status, code, message,
request_id}}`` with a 4xx status, never a traceback):

- ``POST /v1/predict``: raw image bytes (``image/*`` or ``application/octet-stream``), a
  multipart upload (field ``file``), or JSON ``{"url": ...}`` / ``{"image_b64": ...}``;
  query parameters ``top_k``, ``score_threshold``, ``min_score``.
- ``POST /v1/predict/batch``: multipart with several files, or JSON ``{"images": [...]}``;
  one result or error per image.
- ``GET /v1/model``: the model card and the server's limits.
- ``GET /healthz`` (alive), ``GET /readyz`` (model loaded), ``GET /metrics`` (Prometheus).
- ``GET /``: the web page (``serve/ui``, no CDN); ``GET /docs``: an offline endpoint list;
  ``GET /openapi.json``.

The model is loaded once in the lifespan; decoding and preprocessing run in the thread
pool; model runs go through a :class:`~cvpipe.serve.batching.MicroBatcher` (one
inference thread, concurrent requests batched). With ``--token`` every route except the
health checks and the static page needs ``Authorization: Bearer TOKEN``.

Example:
    >>> app = create_app("runs/bins", ServeSettings(token="s3cret"))  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cvpipe.serve import schemas
from cvpipe.serve.batching import MicroBatcher
from cvpipe.serve.metrics import Metrics
from cvpipe.serve.runtime import Runtime, load_runtime
from cvpipe.serve.security import ApiError, DecodedImage, Resolver, check_token, resolve_host
from cvpipe.serve.service import Service, image_request, parse_json_object
from cvpipe.serve.settings import ServeSettings

log = logging.getLogger(__name__)

UI_DIR = Path(__file__).resolve().parent / "ui"
UI_FILES = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/ui/app.js", "/ui/style.css", "/favicon.ico"})
ROUTES = frozenset(
    {
        "/v1/predict",
        "/v1/predict/batch",
        "/v1/model",
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/docs",
        "/openapi.json",
    }
)
_RID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ENV_SOURCE = "CVPIPE_SERVE_SOURCE"
ENV_SETTINGS = "CVPIPE_SERVE_SETTINGS"


def error_body(status: int, code: str, message: str, request_id: str | None) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "request_id": request_id}}


class _BodyTooLarge(Exception):
    pass


class Gate:
    """ASGI middleware: request ids, auth, body-size limit, metrics, last-resort 500s."""

    def __init__(self, app: ASGIApp, settings: ServeSettings, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        rid = given if _RID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        path = scope["path"]
        route = path if path in ROUTES or path.startswith("/ui/") else "other"
        t0 = time.perf_counter()
        status_box = [500]
        started = [False]

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                started[0] = True
                status_box[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        async def reply(status: int, code: str, msg: str) -> None:
            self.metrics.observe_error(status, code)
            body = json.dumps(error_body(status, code, msg, rid)).encode()
            await send_wrapped(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_wrapped({"type": "http.response.body", "body": body})

        limit = self.settings.max_body_bytes
        received = [0]

        async def receive_capped() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > limit:
                    raise _BodyTooLarge
            return message

        self.metrics.in_flight += 1
        try:
            check_token(
                headers.get("authorization"), None if path in OPEN_PATHS else self.settings.token
            )
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _BodyTooLarge
            await self.app(scope, receive_capped, send_wrapped)
        except ApiError as exc:
            await reply(exc.status, exc.code, exc.message)
        except _BodyTooLarge:
            if not started[0]:
                await reply(
                    413,
                    "body_too_large",
                    f"the request body is larger than {limit} bytes (--max-body-mb)",
                )
        except Exception:
            log.exception("request %s %s failed (request id %s)", scope.get("method"), path, rid)
            if not started[0]:
                await reply(
                    500,
                    "internal_error",
                    "the server failed on this request; see its log for the request id",
                )
        finally:
            self.metrics.in_flight -= 1
            seconds = time.perf_counter() - t0
            self.metrics.observe_request(route, scope.get("method", ""), status_box[0], seconds)
            log.info(
                "%s %s %d %.1f ms rid=%s",
                scope.get("method"),
                path,
                status_box[0],
                seconds * 1000,
                rid,
            )


def _rid(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _settings_from_env() -> tuple[str, ServeSettings]:
    source = os.environ.get(ENV_SOURCE)
    if not source:
        raise RuntimeError(f"{ENV_SOURCE} is not set")
    settings = ServeSettings.model_validate(json.loads(os.environ.get(ENV_SETTINGS, "{}")))
    return source, settings


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` worker processes (source/settings from env)."""
    source, settings = _settings_from_env()
    return create_app(source, settings)


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for this process (``mallopt(M_ARENA_MAX)``).

    Returns:
        True when the cap was set; False with ``arenas == 0`` or off glibc.
    """
    if arenas <= 0 or not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(-8, arenas))  # M_ARENA_MAX
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    if ok:
        log.debug("malloc arenas capped at %d", arenas)
    return ok


def create_app(
    run_or_model: str | Path | Runtime,
    settings: ServeSettings | None = None,
    *,
    resolver: Resolver = resolve_host,
) -> FastAPI:
    """Build the FastAPI app serving one model.

    Args:
        run_or_model: a run directory, a ``.onnx`` file, or an already loaded
            :class:`~cvpipe.serve.runtime.Runtime`.
        settings: limits, auth, URL policy (defaults: :class:`ServeSettings`).
        resolver: host → addresses for URL checks (tests inject one).

    Returns:
        The app; the model loads when its lifespan starts (first request with a test
        client, or server start-up).
    """
    settings = settings or ServeSettings()
    metrics = Metrics()
    state: dict[str, Any] = {"service": None, "batcher": None}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_malloc_arenas(settings.malloc_arenas)
        runtime = (
            run_or_model
            if isinstance(run_or_model, Runtime)
            else await run_in_threadpool(
                load_runtime,
                run_or_model,
                threads=settings.intra_op_threads(),
                device=settings.device,
            )
        )
        batcher = MicroBatcher(runtime, settings.batch_max, settings.batch_wait_ms / 1000, metrics)
        await batcher.start()
        state["service"] = Service(runtime, settings, resolver)
        state["batcher"] = batcher
        log.info("serving %s (%s, %s)", runtime.card.model, runtime.card.task, runtime.backend)
        try:
            yield
        finally:
            state["service"] = None
            await batcher.stop()

    app = FastAPI(
        title="cvpipe model server",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.add_middleware(Gate, settings=settings, metrics=metrics)
    app.state.metrics = metrics
    app.state.settings = settings

    def service() -> Service:
        svc = state["service"]
        if svc is None:
            raise ApiError(503, "not_ready", "the model is not loaded yet")
        return svc

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        metrics.observe_error(exc.status, exc.code)
        return JSONResponse(
            error_body(exc.status, exc.code, exc.message, _rid(request)), exc.status
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        metrics.observe_error(exc.status_code, code)
        return JSONResponse(
            error_body(exc.status_code, code, str(exc.detail), _rid(request)), exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", []))
        metrics.observe_error(422, "invalid_field")
        return JSONResponse(
            error_body(422, "invalid_field", f"{where}: {first.get('msg')}", _rid(request)), 422
        )

    async def one_prediction(
        svc: Service, data: bytes, params: dict[str, Any], t0: float
    ) -> dict[str, Any]:
        img, x = await run_in_threadpool(_decode_prepare, svc, data)
        t1 = time.perf_counter()
        out, model_s = await state["batcher"].submit(x)
        return svc.finish(
            img,
            out,
            params,
            {"decode": t1 - t0, "model": model_s, "total": time.perf_counter() - t0},
        )

    async def read_inputs(
        request: Request, svc: Service, many: bool
    ) -> tuple[list[bytes | ApiError], dict[str, Any]]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            body = parse_json_object(await request.body())
            if many:
                items = body.get("images")
                if not isinstance(items, list) or set(body) - {"images"}:
                    raise ApiError(
                        422,
                        "missing_field",
                        'send {"images": [{"url": ...} | {"image_b64": ...}, ...]}',
                    )
                _check_count(len(items), svc.settings.max_batch_items)
                params = svc.params(None, request.query_params)
                return [await _json_item(svc, it) for it in items], params
            req = image_request(body)
            data = await run_in_threadpool(svc.image_bytes, req)
            return [data], svc.params(req, request.query_params)
        params = svc.params(None, request.query_params)
        if ctype == "multipart/form-data":
            limit = svc.settings.max_batch_items if many else 1
            async with request.form(max_files=limit, max_fields=limit + 8) as form:
                files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
                if not files:
                    raise ApiError(
                        422, "missing_field", "the multipart form holds no file (field 'file')"
                    )
                _check_count(len(files), limit)
                return [await f.read() for f in files], params
        if ctype and not (ctype.startswith("image/") or ctype == "application/octet-stream"):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type {ctype!r}: send image bytes (image/*), multipart/form-data or application/json",
            )
        if many:
            raise ApiError(
                415, "unsupported_media_type", "the batch route takes multipart/form-data or JSON"
            )
        return [await request.body()], params

    @app.post(
        "/v1/predict",
        response_model=None,
        responses={200: {"model": schemas.Prediction}, 400: {"model": schemas.ErrorResponse}},
        summary="Predict one image",
    )
    async def predict(request: Request) -> JSONResponse:
        t0 = time.perf_counter()
        svc = service()
        inputs, params = await read_inputs(request, svc, many=False)
        data = inputs[0]
        if isinstance(data, ApiError):  # pragma: no cover - single inputs raise directly
            raise data
        pred = await one_prediction(svc, data, params, t0)
        pred["request_id"] = _rid(request)
        return JSONResponse(pred)

    @app.post(
        "/v1/predict/batch",
        response_model=None,
        responses={200: {"model": schemas.BatchResponse}},
        summary="Predict several images",
    )
    async def predict_batch(request: Request) -> JSONResponse:
        t0 = time.perf_counter()
        svc = service()
        inputs, params = await read_inputs(request, svc, many=True)

        async def item(i: int, data: bytes | ApiError) -> dict[str, Any]:
            try:
                if isinstance(data, ApiError):
                    raise data
                return {"index": i, "prediction": await one_prediction(svc, data, params, t0)}
            except ApiError as exc:
                metrics.observe_error(exc.status, exc.code)
                return {
                    "index": i,
                    "error": error_body(exc.status, exc.code, exc.message, None)["error"],
                }

        results = await asyncio.gather(*(item(i, d) for i, d in enumerate(inputs)))
        return JSONResponse({"results": list(results), "request_id": _rid(request)})

    @app.get("/v1/model", response_model=schemas.ModelInfo, summary="The served model's card")
    async def model_info() -> dict[str, Any]:
        svc = service()
        s = svc.settings
        return {
            **svc.runtime.describe(),
            "limits": {
                "max_body_mb": s.max_body_mb,
                "max_pixels": s.max_pixels,
                "max_batch_items": s.max_batch_items,
                "allow_urls": s.allow_urls,
                "auth": bool(s.token),
                "top_k": s.top_k,
                "score_threshold": s.score_threshold,
                "min_score": s.min_score,
            },
        }

    @app.get("/healthz", response_model=schemas.Health, summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=schemas.Health, summary="Readiness: model loaded")
    async def readyz() -> JSONResponse:
        if state["service"] is None:
            return JSONResponse({"status": "loading"}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics_route() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(UI_DIR / "index.html", media_type="text/html")

    @app.get("/ui/{name}", include_in_schema=False)
    async def ui_file(name: str) -> FileResponse:
        if name not in UI_FILES:
            raise ApiError(404, "not_found", f"no UI file {name!r}")
        return FileResponse(UI_DIR / name, media_type=UI_FILES[name])

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(_docs_page(app.openapi()))

    return app


def _check_count(n: int, limit: int) -> None:
    if n == 0:
        raise ApiError(422, "missing_field", "no images given")
    if n > limit:
        raise ApiError(413, "too_many_items", f"{n} images; at most {limit} per request")


async def _json_item(svc: Service, item: Any) -> bytes | ApiError:
    try:
        if not isinstance(item, dict):
            raise ApiError(422, "invalid_field", "each image must be an object")
        return await run_in_threadpool(svc.image_bytes, image_request(item))
    except ApiError as exc:
        return exc


def _decode_prepare(svc: Service, data: bytes) -> tuple[DecodedImage, Any]:
    img = svc.decode(data)
    return img, svc.runtime.prepare(img.image)


def _docs_page(spec: dict[str, Any]) -> str:
    """A self-contained HTML list of the API's operations (no external scripts)."""
    rows = []
    for path, ops in sorted(spec.get("paths", {}).items()):
        for method, op in ops.items():
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td></tr>"
            )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>cvpipe API</title>"
        "<link rel=stylesheet href='/ui/style.css'></head><body><main class=docs>"
        "<h1>cvpipe model server API</h1><p>Machine-readable schema: <a href='/openapi.json'>/openapi.json</a>."
        " Web page: <a href='/'>/</a>.</p>"
        "<table><thead><tr><th>Method</th><th>Path</th><th>What</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></main></body></html>"
    )
