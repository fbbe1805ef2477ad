"""A small client for a running ``cvpipe serve`` (used by ``cvpipe predict --server``).

Example:
    >>> c = ServerClient("http://127.0.0.1:8000")  # doctest: +SKIP
    >>> c.predict_file("photo.jpg")["label"]  # doctest: +SKIP
    'fries'
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cvpipe.errors import ConfigError, CvpipeError


class ServerError(CvpipeError):
    """The server refused a request or could not be reached."""


class ServerClient:
    """HTTP client for the REST API.

    Args:
        url: the server's base URL (``http://127.0.0.1:8000``).
        token: bearer token (default: ``$CVPIPE_TOKEN``).
        timeout: seconds per request.
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        import httpx

        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"--server {url}: give an http(s) URL such as http://127.0.0.1:8000")
        token = token or os.environ.get("CVPIPE_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ServerError(
                f"{self.url}{path}: {exc}; is 'cvpipe serve' running there?"
            ) from None
        if r.status_code >= 400:
            try:
                err = r.json()["error"]
                msg = f"{err['code']}: {err['message']}"
            except (ValueError, KeyError, TypeError):
                msg = r.text[:200]
            raise ServerError(f"{self.url}{path}: HTTP {r.status_code} {msg}")
        return r.json()

    def model(self) -> tuple[str, list[str]]:
        """``(task, classes)`` of the served model."""
        info = self._call("GET", "/v1/model")
        return str(info["task"]), list(info["classes"])

    def predict_file(self, path: str | Path, **params: Any) -> dict[str, Any]:
        """The server's prediction JSON for one image file."""
        data = Path(path).read_bytes()
        headers = {"Content-Type": "application/octet-stream"}
        return dict(self._call("POST", "/v1/predict", content=data, headers=headers, params=params))

    def predict_batch(self, paths: Sequence[str | Path], **params: Any) -> list[dict[str, Any]]:
        """One ``{"index", "prediction" | "error"}`` per file, in order."""
        files = [
            ("files", (Path(p).name, Path(p).read_bytes(), "application/octet-stream"))
            for p in paths
        ]
        return list(self._call("POST", "/v1/predict/batch", files=files, params=params)["results"])

    def rows(self, files: Sequence[Path], top_k: int, batch_size: int) -> Iterator[dict[str, Any]]:
        """``cvpipe predict`` rows for files, sent ``batch_size`` per request.

        The client is closed when the rows are exhausted (or the generator is closed).
        """
        step = max(1, batch_size)
        try:
            for start in range(0, len(files), step):
                chunk = list(files[start : start + step])
                for f, res in zip(chunk, self.predict_batch(chunk, top_k=top_k), strict=True):
                    if "error" in res:
                        yield {
                            "file": str(f),
                            "error": f"{res['error']['code']}: {res['error']['message']}",
                        }
                        continue
                    yield to_row(str(f), res["prediction"])
        finally:
            self.close()


def to_row(file: str, pred: dict[str, Any]) -> dict[str, Any]:
    """A server prediction as a ``cvpipe predict`` output row (the server's task says how)."""
    from cvpipe.tasks.registry import get_task

    return get_task(str(pred.get("task"))).outputs().response_row(file, pred)
