"""Serve a run (or an exported model.onnx) over a REST API with a web page."""

from __future__ import annotations

import argparse
import json
import logging
import os

from cvpipe.cli.output import warn

HELP = "serve a run over a REST API with a web page"
EXAMPLES = """
  cvpipe serve runs/bins                       # http://127.0.0.1:8000 (page at /, API at /v1/predict)
  cvpipe serve runs/bins/model.onnx --port 9000 --workers 2
  cvpipe serve runs/bins --token "$TOKEN" --allow-urls --max-body-mb 5

  curl -s --data-binary @photo.jpg -H 'Content-Type: image/jpeg' http://127.0.0.1:8000/v1/predict
  curl -s -F file=@photo.jpg http://127.0.0.1:8000/v1/predict
  curl -s -H 'Content-Type: application/json' -d '{"url": "https://example.com/a.jpg"}' ...

ONNX Runtime serves RUN/model.onnx when it exists ('cvpipe export RUN'), else PyTorch.
Binds 127.0.0.1 unless --host says otherwise; with --token every route but /healthz,
/readyz and the page needs 'Authorization: Bearer TOKEN'. Image URLs are fetched only with
--allow-urls, and only from public addresses. Settings can also come from --config/--set
(keys: see cvpipe.serve.settings.ServeSettings).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="RUN_OR_MODEL", help="run directory or model.onnx")
    p.add_argument("--host", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--workers", type=int, help="worker processes (default 1)")
    p.add_argument(
        "--token", help="bearer token required on every route but health (default: none)"
    )
    p.add_argument(
        "--allow-urls",
        action="store_true",
        default=None,
        help='fetch {"url": ...} images (public hosts only)',
    )
    p.add_argument("--max-body-mb", type=float, help="largest request body in MB (default 10)")
    p.add_argument(
        "--max-pixels", type=int, help="largest image width x height (default 40 000 000)"
    )
    p.add_argument(
        "--threads", type=int, help="inference threads per worker (default: CPUs / workers)"
    )
    p.add_argument("--device", help="torch device for runs served without ONNX (default cpu)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import uvicorn

    from cvpipe.config import load_config
    from cvpipe.errors import ConfigError
    from cvpipe.serve.app import ENV_SETTINGS, ENV_SOURCE, create_app
    from cvpipe.serve.settings import ServeSettings

    settings = load_config(
        ServeSettings,
        args.config,
        args.overrides,
        {
            "host": args.host,
            "port": args.port,
            "workers": args.workers,
            "token": args.token or os.environ.get("CVPIPE_TOKEN"),
            "allow_urls": args.allow_urls,
            "max_body_mb": args.max_body_mb,
            "max_pixels": args.max_pixels,
            "threads": args.threads,
            "device": args.device,
        },
    )
    source = Path(args.source)
    if not source.exists():
        raise ConfigError(f"{source}: no such run directory or model file")
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        warn(
            f"listening on {settings.host}: reachable from other machines"
            + ("" if settings.token else " without a token (--token)")
        )
    level = "info" if logging.getLogger("cvpipe").getEffectiveLevel() <= logging.INFO else "warning"
    warn(f"serving {source} on http://{settings.host}:{settings.port} (page: /, API docs: /docs)")
    if settings.workers > 1:
        os.environ[ENV_SOURCE] = str(source.resolve())
        os.environ[ENV_SETTINGS] = json.dumps(settings.model_dump())
        uvicorn.run(
            "cvpipe.serve.app:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=level,
            proxy_headers=False,
        )
    else:
        uvicorn.run(
            create_app(source, settings),
            host=settings.host,
            port=settings.port,
            log_level=level,
            proxy_headers=False,
        )
    return 0
