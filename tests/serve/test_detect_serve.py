"""``cvpipe serve`` on a detect run, end to end through FastAPI's test client."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from tests.engine.tinydetect import make_detect_dataset, make_detect_run
from tests.serve.conftest import image_bytes

from cvpipe.serve import schemas
from cvpipe.serve.app import create_app


def test_serve_detect_run(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path / "ds", splits={"test": 1})
    run = make_detect_run(tmp_path / "run", ds)
    with TestClient(create_app(run)) as c:
        model = c.get("/v1/model").json()
        body = c.post("/v1/predict?min_score=0", content=image_bytes((120, 90))).json()
        batch = c.post(
            "/v1/predict/batch",
            files=[("files", ("a.jpg", image_bytes((64, 48)), "image/jpeg")),
                   ("files", ("b.jpg", image_bytes((30, 20)), "image/jpeg"))],
        )  # fmt: skip
    assert model["task"] == "detect" and model["classes"] == ["plane", "car"]
    assert model["thresholds"]["nms_iou"] == 0.45
    schemas.Prediction.model_validate(body)
    assert body["task"] == "detect" and body["detections"]
    for d in body["detections"]:
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 <= x2 <= 120 and 0 <= y1 <= y2 <= 90 and d["label"] in ("plane", "car")
    assert set(body["counts"]) == {"plane", "car"}
    assert batch.status_code == 200, batch.text
    assert len(batch.json()["results"]) == 2
