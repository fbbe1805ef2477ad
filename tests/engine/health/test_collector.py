"""HealthCollector inside real (tiny) trainer runs: trace contents, sampling, cached
features, stop/save actions, resume, disabled, DDP."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent.parent))
from tinydata import make_dataset  # noqa: E402

from cvpipe.config import load_config  # noqa: E402
from cvpipe.engine.callbacks import Callback  # noqa: E402
from cvpipe.engine.config import TrainConfig  # noqa: E402
from cvpipe.engine.health.collector import HealthCollector, parameter_groups  # noqa: E402
from cvpipe.engine.health.config import HealthConfig  # noqa: E402
from cvpipe.engine.health.trace import Trace  # noqa: E402
from cvpipe.engine.launch import train_distributed  # noqa: E402
from cvpipe.engine.trainer import train  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def cfg(tmp_path: Path, *overrides: str, **values) -> TrainConfig:
    base = {
        "model": "base_cnn", "weights": "none", "input_size": 32, "epochs": 3, "batch_size": 4,
        "workers": 0, "feature_cache_dir": str(tmp_path / "features"), **values,
    }  # fmt: skip
    return load_config(TrainConfig, values=base, overrides=list(overrides))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "ds", classes=3, per_class=8)


def read(run: Path) -> tuple[Trace, dict]:
    return Trace.read(run / "health" / "trace.jsonl"), json.loads(
        (run / "health" / "findings.json").read_text()
    )


def test_healthy_trainer_run_is_silent_and_traced(tmp_path: Path, tiny: Path) -> None:
    run = tmp_path / "run"
    train(tiny, run, cfg(tmp_path, "health.sample_every=4", "health.early_steps=2"))
    tr, found = read(run)
    assert found["fired"] == [], found["rules"]
    assert len(found["rules"]) == 16
    steps_per_epoch = tr.meta["steps_per_epoch"]
    assert [r["s"] for r in tr.steps] == list(range(1, 3 * steps_per_epoch + 1))
    assert all(r["data_s"] >= 0 and r["compute_s"] > 0 and r["n"] > 0 for r in tr.steps)
    assert [s["s"] for s in tr.samples] == [
        s for s in range(1, 3 * steps_per_epoch + 1) if s <= 2 or s % 4 == 0
    ]
    smp = tr.samples[0]
    assert set(smp["grad"]) == set(tr.meta["groups"]) == set(smp["weight"])
    assert all(v > 0 for v in smp["update"].values())
    relu = [n for n, st in smp["act"].items() if n.endswith(".2")]
    assert relu and all(0 < smp["act"][n]["zero"] < 1 for n in relu)
    assert (
        tr.meta["class_counts"] == [6, 6, 6]
        and tr.meta["classes"] == 3
        and tr.meta["trains"] == "model"
    )
    assert tr.system and {"cpu", "proc_cpu", "ram", "rss_mb"} <= set(tr.system[0])
    assert [e["epoch"] for e in tr.epochs] == [1, 2, 3]
    assert not (run / "health" / "report.html").exists()  # report: auto skips smoke-sized runs


def test_sampled_updates_match_a_hand_computed_step(tmp_path: Path, tiny: Path) -> None:
    """Relative updates are right on consecutive sampled steps (buffers reused) and after
    unsampled gaps (buffers released)."""
    expected: dict[int, dict[str, float]] = {}

    class Watch(Callback):
        def on_train_start(self, state) -> None:  # type: ignore[no-untyped-def]
            groups = parameter_groups(state.model, HealthConfig().max_groups)
            before: list[torch.Tensor] = []
            opt = state.optimizer

            def pre(*_) -> None:  # type: ignore[no-untyped-def]
                before[:] = [p.detach().clone() for _, ps in groups for p in ps]

            def post(*_) -> None:  # type: ignore[no-untyped-def]
                it = iter(before)
                row = {}
                for name, ps in groups:
                    d = sum(float((p.detach() - next(it)).norm()) ** 2 for p in ps) ** 0.5
                    w = sum(float(p.detach().norm()) ** 2 for p in ps) ** 0.5
                    row[name] = d / w
                expected[len(expected) + 1] = row

            opt.register_step_pre_hook(pre)
            opt.register_step_post_hook(post)

    run = tmp_path / "run"
    train(tiny, run, cfg(tmp_path, "health.sample_every=3", "health.early_steps=3", epochs=2),
          callbacks=[Watch()])  # fmt: skip
    tr, _ = read(run)
    assert [s["s"] for s in tr.samples][:4] == [1, 2, 3, 6]
    for smp in tr.samples:
        assert smp["update"] == pytest.approx(expected[smp["s"]], rel=1e-4)


def test_hooks_are_removed_after_training(tmp_path: Path, tiny: Path) -> None:
    class Grab(Callback):
        def on_train_start(self, state):
            self.state = state

    grab = Grab()
    train(
        tiny, tmp_path / "run", cfg(tmp_path, "health.sample_every=1", epochs=1), callbacks=[grab]
    )
    model, opt = grab.state.model, grab.state.optimizer
    assert all(not m._forward_hooks for m in model.modules())
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks


def test_cached_features_trace_the_head(tmp_path: Path, tiny: Path) -> None:
    run = tmp_path / "run"
    res = train(tiny, run, cfg(tmp_path, "freeze=frozen", epochs=2))
    assert res.feature_cache in ("hit", "miss")
    tr, _ = read(run)
    assert tr.meta["trains"] == "head"
    assert tr.meta["groups"] == ["0", "3"]  # the head's Linear layers
    assert set(tr.samples[0]["act"]) == {"0", "1", "3"}


def test_stop_action_stops_cleanly_with_a_checkpoint(tmp_path: Path, tiny: Path) -> None:
    run = tmp_path / "run"
    overrides = ["optimizer.name=sgd", "optimizer.lr=1000", "health.sample_every=1",
                 "health.rules.ExplodingTensor.action=stop"]  # fmt: skip
    res = train(tiny, run, cfg(tmp_path, *overrides, epochs=3))
    assert res.stopped_early and len(res.history) == 1
    assert (run / "checkpoints" / "last.pt").is_file()
    tr, found = read(run)
    assert "ExplodingTensor" in found["fired"]
    assert found["stop_reason"].startswith("health rule ExplodingTensor")
    assert len(tr.steps) < tr.meta["steps_per_epoch"]  # stopped mid-epoch, right after the step


@pytest.mark.slow
def test_save_action_writes_tensor_snapshots(tmp_path: Path, tiny: Path) -> None:
    run = tmp_path / "run"
    train(tiny, run, cfg(tmp_path, "health.rules.WeightUpdateRatio.max_ratio=1e-9",
                         "health.rules.WeightUpdateRatio.action=save", epochs=1))  # fmt: skip
    snaps = sorted((run / "health" / "snapshots").glob("WeightUpdateRatio_step*.pt"))
    assert len(snaps) == 1
    data = torch.load(snaps[0], weights_only=True)
    assert "param/head.3.weight" in data and "grad/head.3.weight" in data
    assert data["loss/last_steps"].dim() == 1  # losses of the steps before the snapshot


def test_disabled_writes_nothing(tmp_path: Path, tiny: Path) -> None:
    train(tiny, tmp_path / "run", cfg(tmp_path, "health.enabled=false", epochs=1))
    assert not (tmp_path / "run" / "health").exists()


@pytest.mark.slow
def test_resume_keeps_the_finished_epochs(tmp_path: Path, tiny: Path) -> None:
    run = tmp_path / "run"
    train(tiny, run, cfg(tmp_path, epochs=1))
    before, _ = read(run)
    train(tiny, run, cfg(tmp_path, epochs=2), resume=True)
    after, _ = read(run)
    spe = before.meta["steps_per_epoch"]
    assert [r["s"] for r in after.steps] == list(range(1, 2 * spe + 1))
    assert [e["epoch"] for e in after.epochs] == [1, 2]


@pytest.mark.slow
def test_failed_run_still_writes_findings(tmp_path: Path, tiny: Path) -> None:
    from cvpipe.errors import TrainingDiverged

    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged):
        train(tiny, run, cfg(tmp_path, "optimizer.name=sgd", "optimizer.lr=1e12", epochs=2))
    tr, found = read(run)
    assert tr.events and tr.events[-1]["what"] == "diverged"
    assert "ExplodingTensor" in found["fired"]


def test_parameter_groups_merge_beyond_max() -> None:
    model = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(10)])
    assert [n for n, _ in parameter_groups(model, 20)] == [str(i) for i in range(10)]
    merged = parameter_groups(model, 3)
    assert len(merged) == 3 and merged[0][0] == "0..2"
    assert sum(len(ps) for _, ps in merged) == 20
    model[0].weight.requires_grad_(False)
    assert len(parameter_groups(model, 20)[0][1]) == 1


@pytest.mark.slow
def test_collector_as_an_explicit_callback(tmp_path: Path, tiny: Path) -> None:
    collector = HealthCollector(HealthConfig(sample_every=1, report="off"))
    train(
        tiny,
        tmp_path / "run",
        cfg(tmp_path, "health.enabled=false", epochs=1),
        callbacks=[collector],
    )
    assert collector.finished and len(collector.trace.samples) == len(collector.trace.steps)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ddp_rank0_writes_the_trace(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", classes=2, per_class=8, splits={"train": 6, "val": 2})
    config = cfg(tmp_path, "health.sample_every=1", epochs=2)
    train_distributed(ds, tmp_path / "two", config, nproc=2)
    tr, found = read(tmp_path / "two")
    assert tr.meta["world_size"] == 2
    assert [r["s"] for r in tr.steps] == list(range(1, 2 * tr.meta["steps_per_epoch"] + 1))
    assert len(tr.samples) == len(tr.steps) and found["rules"]


def test_activation_stats_read_channels_last_outputs_whole_and_in_place() -> None:
    collector = HealthCollector(HealthConfig())
    module = torch.nn.ReLU().train()
    out = torch.relu(torch.randn(8, 6, 5, 5, generator=torch.Generator().manual_seed(0)))
    stats = []
    for x in (out, out.contiguous(memory_format=torch.channels_last)):
        collector._acts = {}
        collector._act_hook("relu", "relu")(module, (x,), x)
        stats.append(collector._activation_stats()["relu"])
    nchw, nhwc = stats
    assert nhwc["mean"] == pytest.approx(nchw["mean"], rel=1e-6)
    assert nhwc["std"] == pytest.approx(nchw["std"], rel=1e-6)
    assert nhwc["zero"] == pytest.approx(nchw["zero"], rel=1e-6)
    assert nchw["mean"] == pytest.approx(out.mean().item(), rel=1e-6)  # the whole batch
