"""cvpipe doctor: the table, --json, exit codes, and each check on injected faults."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from cvpipe import doctor
from cvpipe.cli.main import main

NAMES = ["cvpipe", "python", "lock", "core packages", "torch", "torchvision", "timm",
         "onnxruntime", "fastapi", "optuna", "opencv", "cpu", "memory", "cuda", "weights",
         "chromium", "postgresql", "CVPIPE_HOME"]  # fmt: skip


def test_doctor_json_has_every_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CVPIPE_HOME", str(tmp_path / "home"))
    code = main(["doctor", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == NAMES
    assert all(r["status"] in ("ok", "warn", "missing", "fail") for r in rows)
    assert all(r["fix"] for r in rows if r["status"] != "ok")  # every problem says how to fix it
    assert code == (1 if any(r["status"] == "fail" for r in rows) else 0)
    by = {r["name"]: r for r in rows}
    assert by["python"]["detail"].startswith(".".join(map(str, sys.version_info[:2])))
    assert "not created yet" in by["CVPIPE_HOME"]["detail"]


def test_doctor_table_and_exit_code_on_a_broken_required_piece(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor, "CORE", (*doctor.CORE, "cvpipe-no-such-dist"))
    assert main(["doctor", "--no-weights"]) == 1
    out = capsys.readouterr().out
    assert "core packages  FAIL" in out and "not installed: cvpipe-no-such-dist" in out
    assert "to fix:" in out and "core packages: pip install -e ." in out
    assert "1 required piece(s) broken: core packages" in out


def test_lock_drift_is_a_warning_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("numpy==0.0.1\n")
    monkeypatch.setenv("CVPIPE_LOCK", str(lock))
    check, pins = doctor.check_lock({"numpy": "2.0.0", "rich": "13.0"})
    assert check.status == "warn" and pins == {"numpy": "0.0.1"}
    assert "numpy 2.0.0 is installed; the lock has 0.0.1" in check.detail
    assert "rich 13.0 is installed but not in the lock" in check.detail
    assert "make venv" in check.fix
    core = doctor.check_core(pins)
    assert core.status == "warn" and "numpy" in core.detail and "lock.txt" in core.fix


def test_opencv_without_tensorflow_importer_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cv2")
    fake = types.ModuleType("cv2")
    fake.__version__ = "5.1.0"  # type: ignore[attr-defined]
    fake.dnn = types.SimpleNamespace()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cv2", fake)
    check = doctor.check_opencv(None)
    assert check.status == "warn" and "OpenCV 5" in check.detail
    assert check.fix == "pip install 'opencv-python-headless>=4.8,<5'"


def test_missing_optional_package_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    check = doctor.check_optional("cvpipe-no-such-dist", "serve", "serve", None)
    assert check.status == "missing" and check.fix == "pip install 'cvpipe[serve]'"


def test_cpu_reports_bf16_instructions() -> None:
    assert "AMX BF16" in doctor.check_cpu({"avx2", "avx512f", "amx_bf16"}).detail
    assert "amp=bf16" in doctor.check_cpu({"avx512_bf16"}).detail
    plain = doctor.check_cpu({"avx2"}).detail
    assert "AVX2" in plain and "keep amp off" in plain


def test_home_size_by_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "weights").mkdir(parents=True)
    (home / "features" / "k").mkdir(parents=True)
    (home / "weights" / "a.pth").write_bytes(b"\0" * 3 * 2**20)
    (home / "features" / "k" / "f.npy").write_bytes(b"\0" * 2**20)
    monkeypatch.setenv("CVPIPE_HOME", str(home))
    check = doctor.check_home()
    assert check.status == "ok"
    assert "4 MiB (features 1 MiB, weights 3 MiB)" in check.detail
    assert doctor.dir_size(home) == (4 * 2**20, True)
    assert doctor.dir_size(home, budget_s=-1) == (0, False)  # out of time: a lower bound
