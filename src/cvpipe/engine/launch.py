"""``train_distributed()``: :func:`~cvpipe.engine.trainer.train` in several local
processes with DDP (``cvpipe train --nproc N``); under ``torchrun`` call ``train`` itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from cvpipe.engine import distributed as D
from cvpipe.engine.config import TrainConfig
from cvpipe.engine.devices import resolve_device
from cvpipe.engine.results import RunResult
from cvpipe.engine.trainer import train
from cvpipe.errors import ConfigError


def _spawned_train(
    dataset: str,
    out: str,
    config_json: dict[str, Any],
    resume: bool,
    progress_on: bool,
    log_level: int,
) -> None:
    from cvpipe import progress

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("cvpipe").setLevel(log_level if D.env_context().is_main else logging.WARNING)
    progress.enable(progress_on and D.env_context().is_main)
    train(dataset, out, TrainConfig.model_validate(config_json), resume=resume)


def train_distributed(
    dataset: str | Path, out: str | Path, config: TrainConfig, nproc: int, *, resume: bool = False
) -> RunResult:
    """:func:`train` in ``nproc`` local processes with DDP (gloo on CPU, NCCL on CUDA).

    ``config.batch_size`` stays the global batch: each process gets ``batch_size / nproc``.
    Callbacks cannot cross process boundaries; use :func:`train` under ``torchrun`` for them.

    Returns:
        The :class:`RunResult` read back from the run directory rank 0 wrote.

    Raises:
        ConfigError: ``nproc`` < 1, or more CUDA processes than GPUs.
        CvpipeError: the error a rank failed with.
    """
    from cvpipe import progress

    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1 (got {nproc})")
    if nproc == 1:
        return train(dataset, out, config, resume=resume)
    from cvpipe.data.manifest import read_info
    from cvpipe.tasks.registry import get_task

    task = get_task(read_info(Path(dataset)).task)
    if not task.data_parallel:
        raise ConfigError(
            f"--nproc {nproc}: data-parallel training of {task.models} is not supported yet; "
            f"train {task.models} in one process (leave out --nproc)"
        )
    device = resolve_device(config.device)
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise ConfigError(
            f"--nproc {nproc} but only {torch.cuda.device_count()} GPU(s); use --nproc {torch.cuda.device_count()} or --device cpu"
        )
    level = logging.getLogger("cvpipe").getEffectiveLevel()
    args = (
        str(dataset),
        str(out),
        config.model_dump(mode="json"),
        resume,
        progress.enabled(),
        level,
    )
    D.launch(nproc, _spawned_train, args)
    return RunResult.from_run_dir(out)
