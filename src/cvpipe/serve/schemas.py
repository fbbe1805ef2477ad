"""Pydantic models of the REST API's requests and responses (for OpenAPI and clients).

The server builds responses as plain dicts (see :func:`cvpipe.serve.runtime.format_prediction`)
and documents them with these models; tests validate real responses against them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ImageRequest(BaseModel):
    """JSON body of ``POST /v1/predict``: exactly one of ``url`` or ``image_b64``."""

    url: str | None = Field(
        default=None, description="http(s) image URL (only when the server allows URLs)"
    )
    image_b64: str | None = Field(default=None, description="image file bytes, base64-encoded")
    top_k: int | None = Field(default=None, ge=1, description="classes listed (classify/count)")
    score_threshold: float | None = Field(
        default=None, ge=0, le=1, description="detect: counted boxes"
    )
    min_score: float | None = Field(default=None, ge=0, le=1, description="detect: listed boxes")


class BatchRequest(BaseModel):
    """JSON body of ``POST /v1/predict/batch``."""

    images: list[ImageRequest]


class LabelScore(BaseModel):
    label: str
    score: float


class CountProb(BaseModel):
    count: int | str
    prob: float


class Detection(BaseModel):
    box: list[float] = Field(description="[x1, y1, x2, y2] in pixels of the original image")
    box_norm: list[float] = Field(description="the box divided by (width, height, width, height)")
    label: str
    score: float


class ImageInfo(BaseModel):
    width: int
    height: int
    format: str


class Prediction(BaseModel):
    """One image's prediction; the fields present depend on the task."""

    task: str
    image: ImageInfo
    label: str | None = None
    score: float | None = None
    top_k: list[LabelScore] | None = None
    count: int | str | None = None
    distribution: list[CountProb] | None = None
    detections: list[Detection] | None = None
    counts: dict[str, int] | None = None
    score_threshold: float | None = None
    timing_ms: dict[str, float] = Field(default_factory=dict)
    request_id: str | None = None


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class BatchItem(BaseModel):
    index: int
    prediction: Prediction | None = None
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem]
    request_id: str | None = None


class ModelInfo(BaseModel):
    task: str
    classes: list[str]
    model: str
    input_size: int
    preprocess: dict[str, Any]
    metrics: dict[str, Any]
    backend: str
    export: dict[str, Any] | None = None
    thresholds: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, Any] = Field(default_factory=dict)


class Health(BaseModel):
    status: str
