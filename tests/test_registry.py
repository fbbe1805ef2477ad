from __future__ import annotations

import pytest

from cvpipe.errors import UnknownNameError
from cvpipe.registry import Registry


def test_register_get_list_and_pattern() -> None:
    reg: Registry[object] = Registry("model")

    @reg.register("resnet50")
    def resnet50() -> str:
        return "r50"

    reg.add("resnet18", lambda: "r18")
    assert reg.get("resnet50") is resnet50
    assert reg.names() == ["resnet18", "resnet50"]
    assert reg.names("*50") == ["resnet50"]
    assert "resnet18" in reg and len(reg) == 2


def test_duplicate_raises() -> None:
    reg: Registry[int] = Registry("thing")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 2)


def test_unknown_name_suggests_and_lists() -> None:
    reg: Registry[int] = Registry("dataset format")
    for n in ("voc", "coco", "yolo"):
        reg.add(n, 0)
    with pytest.raises(UnknownNameError) as exc:
        reg.get("vco")
    msg = str(exc.value)
    assert "unknown dataset format 'vco'" in msg
    assert "did you mean 'voc'" in msg
    assert "valid: coco, voc, yolo" in msg
