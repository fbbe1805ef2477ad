"""Models trained on ``--exif apply`` datasets see turned photos in predict and serve too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.data.exif_images import BOX, H, W, white_box, write_oriented

import cvpipe.orientation as O
from cvpipe.config import load_config
from cvpipe.data.importers import ImportOptions, import_dataset
from cvpipe.engine.config import TrainConfig
from cvpipe.engine.runs import ModelCard
from cvpipe.engine.trainer import train
from cvpipe.errors import CheckpointError
from cvpipe.images import decode
from cvpipe.inference.classify import Predictor
from cvpipe.inference.detect import _DecodeDataset, save_drawn
from cvpipe.inference.predictor import BasePredictor, record_orientations
from cvpipe.models.classification import create_classifier
from cvpipe.models.heads import HeadSpec
from cvpipe.serve.security import decode_image


def _card(exif: str) -> tuple[torch.nn.Module, ModelCard]:
    torch.manual_seed(0)
    net = create_classifier("base_cnn", num_classes=2, weights=None, input_size=32, head=HeadSpec())
    card = ModelCard(task="classify", classes=["a", "b"], model="base_cnn", head={}, preprocess=net.preprocess, input_size=32, exif=exif)  # fmt: skip
    return net, card


def test_card_round_trip_and_bad_value() -> None:
    _, card = _card("apply")
    d = card.to_json()
    assert d["exif"] == "apply" and ModelCard.from_json(d).orientation == "exif"
    keep = _card("keep")[1].to_json()
    assert "exif" not in keep and ModelCard.from_json(keep).orientation is None
    with pytest.raises(CheckpointError, match="'exif'"):
        ModelCard.from_json({**d, "exif": "rotate"})


def test_predictor_orients_files_as_its_card_says(tmp_path: Path) -> None:
    p6 = write_oriented(tmp_path / "a.jpg", 6)
    turned = decode(p6, orientation=6)
    stored = decode(p6)
    apply = Predictor(*_card("apply"))
    assert np.array_equal(np.asarray(apply.load(p6)), np.asarray(turned))
    (res,) = apply.predict_paths([p6])
    assert np.allclose(res.output, apply.predict_images([turned])[0], atol=1e-5)
    assert not np.allclose(res.output, apply.predict_images([stored])[0], atol=1e-5)
    keep = Predictor(*_card("keep"))
    assert keep.load(p6).size == (W, H)
    (res,) = keep.predict_paths([p6])
    assert np.allclose(res.output, keep.predict_images([stored])[0], atol=1e-5)
    # dataset records bring their own orientation, whatever the card says
    (res,) = keep.predict_paths([p6], orientations=[6])
    assert np.allclose(res.output, keep.predict_images([turned])[0], atol=1e-5)
    with pytest.raises(ValueError, match="orientations"):
        list(keep.predict_paths([p6], orientations=[]))


def test_record_orientations_only_when_something_turns() -> None:
    from cvpipe.data.manifest import Record

    plain = [Record("a", "a.jpg", 4, 4)]
    turned = [Record("b", "b.jpg", 4, 4, meta={O.META_KEY: 6}), *plain]
    assert record_orientations(Predictor(*_card("keep")), plain) == {}
    assert record_orientations(Predictor(*_card("keep")), turned) == {"orientations": [6, None]}
    # an "apply" model evaluated on a kept dataset must see the stored pixels
    assert record_orientations(Predictor(*_card("apply")), plain) == {"orientations": [None]}


def test_detection_decode_reports_the_oriented_size(tmp_path: Path) -> None:
    p = write_oriented(tmp_path / "a.jpg", 8, size=(640, 400))
    _, im, size, err = _DecodeDataset([p], 64, ["exif"])[0]
    assert err is None and size == (400, 640) and im.width < im.height
    _, im, size, _ = _DecodeDataset([p], 64, [None])[0]
    assert size == (640, 400) and im.width > im.height
    det = {"boxes": np.array([BOX]), "scores": np.array([0.9]), "labels": np.array([0])}
    drawn = save_drawn(p, det, ["block"], tmp_path / "out.jpg", orientation="exif")
    with Image.open(drawn) as out:
        assert out.size == (400, 640)


def test_serve_decode_orients_for_apply_models(tmp_path: Path) -> None:
    data = write_oriented(tmp_path / "a.jpg", 6).read_bytes()
    img = decode_image(data, 10**7, orientation="exif")
    assert (img.width, img.height) == (H, W) and img.image.size == (H, W)
    (box,) = O.orient_boxes([BOX], W, H, 6)
    assert white_box(img.image) == pytest.approx(box, abs=1)
    kept = decode_image(data, 10**7)
    assert (kept.width, kept.height) == (W, H) and kept.image.size == (W, H)
    bad = decode_image(write_oriented(tmp_path / "b.jpg", 65537).read_bytes(), 10**7, orientation="exif")  # fmt: skip
    assert bad.image.size == (W, H)


@pytest.mark.slow
def test_training_on_an_applied_dataset_marks_the_card(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for c, colour in (("a", 0), ("b", 1)):
        for i in range(4):
            write_oriented(src / c / f"{i}.jpg", 6 if i % 2 else 3)
            if colour:  # make the classes tell apart
                with Image.open(src / c / f"{i}.jpg") as im:
                    exif = im.getexif()
                    inverted = Image.eval(im, lambda v: 255 - v)
                inverted.save(src / c / f"{i}.jpg", exif=exif)
    ds = import_dataset("imagefolder", src, tmp_path / "ds", ImportOptions(exif="apply"))
    assert {r.orientation for r in ds} == {6, 3}
    config = load_config(TrainConfig, values={"model": "base_cnn", "weights": "none", "input_size": 32, "epochs": 1, "batch_size": 4, "workers": 0, "feature_cache_dir": str(tmp_path / "f")})  # fmt: skip
    train(tmp_path / "ds", tmp_path / "run", config)
    card = json.loads((tmp_path / "run" / "model_card.json").read_text())
    assert card["exif"] == "apply"
    pred = BasePredictor.from_run(tmp_path / "run")
    p = src / "a" / "1.jpg"
    assert pred.load(p).size == (H, W)
