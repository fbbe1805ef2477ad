"""Data-parallel training: process groups, launching, reductions.

Two ways in, one code path:

- ``cvpipe train ... --nproc N`` calls :func:`launch`, which spawns N local processes
  with torchrun-style environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR``, ``MASTER_PORT`` on a free port);
- ``torchrun --nproc-per-node N -m cvpipe.cli.main train ...`` sets them itself.

:func:`setup` reads the variables and joins the group (gloo on CPU, NCCL on CUDA). The
trainer shards batches with :class:`~cvpipe.data.datasets.EpochSampler`, wraps the model
in DDP, sums metrics over ranks with :func:`all_reduce_sum`; rank 0 alone writes the run
directory.

Example:
    >>> launch(2, train_fn, ("datasets/tiny", "runs/ddp", config_dict))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from cvpipe import errors
from cvpipe.errors import CvpipeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_context() -> DistContext:
    """The context the environment describes (torchrun variables), without joining."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistContext(
        int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))
    )


def setup(device_type: str) -> DistContext:
    """Join the process group described by the environment (no-op for one process).

    Args:
        device_type: ``cpu`` (gloo) or ``cuda`` (NCCL).

    Returns:
        The :class:`DistContext`.
    """
    ctx = env_context()
    if not ctx.enabled:
        return ctx
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        log.info("rank %d/%d joined the %s process group", ctx.rank, ctx.world_size, backend)
    return DistContext(ctx.rank, ctx.world_size, ctx.local_rank, dist.get_backend())


def teardown() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _device_for_reduce() -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum ``values`` element-wise over all ranks (identity without a group)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_device_for_reduce())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def any_rank(flag: bool) -> bool:
    """True when ``flag`` is True on any rank."""
    return all_reduce_sum([1.0 if flag else 0.0])[0] > 0


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(
    local_rank: int,
    nproc: int,
    port: int,
    threads: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    errq: Any,
) -> None:
    os.environ.update(
        RANK=str(local_rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(threads)
    try:
        fn(*args)
    except CvpipeError as exc:
        errq.put((local_rank, type(exc).__name__, str(exc)))
        raise SystemExit(1) from None
    except BaseException:
        errq.put((local_rank, "", traceback.format_exc()))
        raise SystemExit(1) from None
    finally:
        teardown()


def launch(nproc: int, fn: Callable[..., Any], args: tuple[Any, ...] = ()) -> None:
    """Run ``fn(*args)`` in ``nproc`` spawned processes forming one process group.

    ``fn`` must be importable (a module-level function) and should call :func:`setup`.

    Raises:
        CvpipeError: (the same subclass) when a rank failed with one.
        RuntimeError: when a rank crashed otherwise (its traceback included).
    """
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    errq = ctx.SimpleQueue()
    threads = max(1, (os.cpu_count() or 1) // nproc)
    try:
        mp.start_processes(
            _worker,
            args=(nproc, free_port(), threads, fn, args, errq),
            nprocs=nproc,
            join=True,
            start_method="spawn",
        )
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
        failures = []
        while not errq.empty():
            failures.append(errq.get())
        if not failures:
            raise RuntimeError(f"distributed training failed: {exc}") from None
        failures.sort(key=lambda f: (f[1] == "", f[0]))
        rank, name, message = failures[0]
        cls = getattr(errors, name, None) if name else None
        if isinstance(cls, type) and issubclass(cls, CvpipeError):
            raise cls(message) from None
        raise RuntimeError(f"rank {rank} failed:\n{message}") from None
