"""What the REST app and the serverless handler share: request payload → image → prediction.

:class:`Service` holds the runtime and the settings. Its synchronous :meth:`Service.predict`
does a whole request in the calling thread (the Lambda handler); the FastAPI app uses the
pieces (:meth:`load_json`, :meth:`decode`, ``runtime.prepare``, :meth:`finish`) around the
micro-batcher.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cvpipe.serve.runtime import Runtime, format_prediction
from cvpipe.serve.schemas import ImageRequest
from cvpipe.serve.security import (
    ApiError,
    DecodedImage,
    Resolver,
    decode_image,
    fetch_url,
    resolve_host,
)
from cvpipe.serve.settings import ServeSettings


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON body that must be an object.

    Raises:
        ApiError: 400 invalid JSON or not an object.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the JSON body must be an object")
    return data


def image_request(data: Mapping[str, Any]) -> ImageRequest:
    """Validate ``{"url": ...}`` / ``{"image_b64": ...}`` (+ optional parameters).

    Raises:
        ApiError: 422 for wrong types, neither or both image fields.
    """
    try:
        req = ImageRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, "invalid_field", f"{field}: {first['msg']}") from None
    unknown = sorted(set(data) - set(ImageRequest.model_fields))
    if unknown:
        raise ApiError(
            422,
            "unknown_field",
            f"unknown field(s) {unknown}; valid: {', '.join(ImageRequest.model_fields)}",
        )
    if (req.url is None) == (req.image_b64 is None):
        raise ApiError(422, "missing_field", 'give exactly one of "url" or "image_b64"')
    return req


class Service:
    """A runtime plus the settings that guard it.

    Args:
        runtime: the loaded model.
        settings: limits, URL policy, default thresholds.
        resolver: host name → addresses for URL checks (tests inject one).
    """

    def __init__(
        self, runtime: Runtime, settings: ServeSettings, resolver: Resolver = resolve_host
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.resolver = resolver

    def decode(self, data: bytes) -> DecodedImage:
        """Check and decode image bytes (see :func:`decode_image`)."""
        if len(data) > self.settings.max_body_bytes:
            raise ApiError(
                413,
                "body_too_large",
                f"image of {len(data)} bytes; the limit is {self.settings.max_body_bytes}",
            )
        return decode_image(
            data,
            self.settings.max_pixels,
            draft=self.runtime.draft,
            orientation=self.runtime.card.orientation,
        )

    def image_bytes(self, req: ImageRequest) -> bytes:
        """The bytes named by a JSON image request (download or base64).

        Raises:
            ApiError: refused URL, failed download, invalid base64.
        """
        if req.url is not None:
            return fetch_url(req.url, self.settings, self.resolver)
        try:
            return base64.b64decode(req.image_b64 or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(400, "invalid_base64", f"image_b64 is not valid base64: {exc}") from None

    def params(
        self, req: ImageRequest | None = None, query: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Prediction parameters: JSON fields, then query parameters, then the defaults."""
        s = self.settings
        out: dict[str, Any] = {
            "top_k": s.top_k,
            "score_threshold": s.score_threshold,
            "min_score": s.min_score,
        }
        for key, cast in (("top_k", int), ("score_threshold", float), ("min_score", float)):
            if query and query.get(key) not in (None, ""):
                try:
                    out[key] = cast(query[key])
                except ValueError:
                    raise ApiError(
                        422, "invalid_field", f"query parameter {key}: not a number"
                    ) from None
            if req is not None and getattr(req, key) is not None:
                out[key] = getattr(req, key)
        if (
            out["top_k"] < 1
            or not (0 <= out["score_threshold"] <= 1)
            or not (0 <= out["min_score"] <= 1)
        ):
            raise ApiError(422, "invalid_field", "top_k must be >= 1; thresholds within 0..1")
        return out

    def finish(
        self, img: DecodedImage, output: Any, params: Mapping[str, Any], timing: dict[str, float]
    ) -> dict[str, Any]:
        """The response dict for one image."""
        pred = format_prediction(
            self.runtime.card,
            output,
            img.width,
            img.height,
            top_k=params["top_k"],
            score_threshold=params["score_threshold"],
            min_score=params["min_score"],
        )
        return {
            "task": self.runtime.card.task,
            "image": {"width": img.width, "height": img.height, "format": img.format},
            **pred,
            "timing_ms": {k: round(v * 1000, 3) for k, v in timing.items()},
        }

    def predict(
        self,
        data: bytes | None = None,
        json_body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A whole request in this thread: raw image bytes, or a JSON image request.

        Raises:
            ApiError: any refused input (see :mod:`cvpipe.serve.security`).
        """
        t0 = time.perf_counter()
        req = image_request(json_body) if json_body is not None else None
        if req is not None:
            data = self.image_bytes(req)
        params = self.params(req, query)
        img = self.decode(data or b"")
        x = self.runtime.prepare(img.image)
        t1 = time.perf_counter()
        out = self.runtime.run([x])[0]
        t2 = time.perf_counter()
        return self.finish(
            img,
            out,
            params,
            {"decode": t1 - t0, "model": t2 - t1, "total": time.perf_counter() - t0},
        )
