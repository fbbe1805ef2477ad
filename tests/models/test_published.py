"""resolve(): the download step after every offline source, through a loopback mirror."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
import torch
from tests.weightserver import WeightServer, closed_port, publish
from torchvision import models as tvm

from cvpipe.errors import WeightsNotFoundError
from cvpipe.models.published import published_classifier, published_coco
from cvpipe.models.weight_sources import find_sources
from cvpipe.models.weights import resolve


def test_published_files_come_from_torchvision_and_timm() -> None:
    r50 = published_classifier("resnet50")
    assert r50 is not None and r50.remote.filename == "resnet50-11ad3fa6.pth"
    assert r50.remote.sha256 == "11ad3fa6" and r50.kind == "torch-cache"
    lite = published_classifier("tf_efficientnet_lite0")
    assert lite is not None and lite.kind == "store"
    assert lite.remote.url.startswith("https://huggingface.co/timm/tf_efficientnet_lite0")
    assert lite.remote.mirror_path.endswith("/model.safetensors")
    assert published_classifier("base_cnn") is None
    coco = published_coco("fasterrcnn_resnet50_fpn")
    assert coco is not None and coco.remote.sha256 == "258fb6c6"
    assert published_coco("ssd512_resnet50") is None


def test_resolve_downloads_verifies_caches_then_reads_the_cache(
    offline_home: Path, weight_server: WeightServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    state = tvm.resnet18().state_dict()
    name = publish(monkeypatch, weight_server, "resnet18", state)
    got = resolve("resnet18")
    assert got.source.kind == "download" and got.source.path.name == name
    assert got.source.path.parent == offline_home / "torch" / "hub" / "checkpoints"
    assert torch.equal(got.state_dict["conv1.weight"], state["conv1.weight"])
    n = len(weight_server.requests)
    again = resolve("resnet18")  # second time: the torch cache, no request
    assert again.source.kind == "torch-cache" and len(weight_server.requests) == n


def test_timm_weights_from_the_hub_land_in_the_store(
    offline_home: Path, weight_server: WeightServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import timm
    from safetensors.torch import save

    torch.manual_seed(0)
    net = timm.create_model("resnet10t", pretrained=False)
    pub = published_classifier("timm/resnet10t")
    assert pub is not None
    body = save({k: v.contiguous() for k, v in net.state_dict().items()})
    weight_server.serve(f"mirror/{pub.remote.mirror_path}", body)
    publish(monkeypatch, weight_server, "unused", {})  # downloads on, mirror set
    got = resolve("timm/resnet10t")
    assert got.source.kind == "download" and got.source.path.suffix == ".safetensors"
    index = json.loads((offline_home / "cvpipe" / "weights" / "index.json").read_text())
    entry = index["models"]["timm/resnet10t"]
    assert entry["sha256"] == got.sha256 and entry["origin"].endswith("model.safetensors")
    assert [s.kind for s in find_sources("timm/resnet10t")] == ["store"]


def test_offline_and_unreachable_fail_fast_in_one_line(
    offline_home: Path, weight_server: WeightServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(WeightsNotFoundError) as exc:  # tests run with CVPIPE_OFFLINE=1
        resolve("resnet50")
    msg = str(exc.value)
    assert "downloads are off (CVPIPE_OFFLINE=1)" in msg and "resnet50-11ad3fa6.pth" in msg
    assert "cvpipe weights add resnet50 FILE" in msg and "\n" not in msg
    publish(monkeypatch, weight_server, "resnet50", {"x": torch.zeros(1)})
    monkeypatch.setenv("CVPIPE_WEIGHTS_URL", f"http://127.0.0.1:{closed_port()}/m")
    t0 = time.monotonic()
    with pytest.raises(WeightsNotFoundError, match="cannot connect.*cvpipe weights add resnet50"):
        resolve("resnet50")
    assert time.monotonic() - t0 < 10


def test_a_mirror_serving_another_file_is_refused(
    offline_home: Path, weight_server: WeightServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = publish(monkeypatch, weight_server, "resnet18", tvm.resnet18().state_dict())
    buf = io.BytesIO()
    torch.save({"x": torch.ones(3)}, buf)
    weight_server.serve(f"mirror/{name}", buf.getvalue())  # same name, other bytes
    with pytest.raises(WeightsNotFoundError, match="does not match the published"):
        resolve("resnet18")
    assert not list((offline_home / "torch" / "hub" / "checkpoints").glob("*.pth"))
