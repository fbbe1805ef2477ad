"""Serving: REST API + web page (:func:`create_app`), runtimes, and a Lambda handler.

Imports are lazy so ``import cvpipe.serve.handler`` in a serverless container pulls in
only what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cvpipe.serve.app import create_app
    from cvpipe.serve.runtime import Runtime, load_runtime
    from cvpipe.serve.settings import ServeSettings

__all__ = ["Runtime", "ServeSettings", "create_app", "load_runtime"]

_WHERE = {
    "create_app": "cvpipe.serve.app",
    "Runtime": "cvpipe.serve.runtime",
    "load_runtime": "cvpipe.serve.runtime",
    "ServeSettings": "cvpipe.serve.settings",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'cvpipe.serve' has no attribute {name!r}")
