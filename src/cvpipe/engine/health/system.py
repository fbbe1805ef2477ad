"""CPU, RAM and GPU utilisation readings for the health trace.

psutil gives the machine's CPU and RAM use and this process tree's CPU (the trainer and its
loader workers, in % of one core, like ``top``). GPU utilisation and memory come from NVML
through ``pynvml`` when it is installed and the run is on CUDA; without it, GPU memory
falls back to what PyTorch reserved and utilisation is left out. Nothing here raises:
a reading that fails is skipped.

Example:
    >>> mon = SystemMonitor(torch.device("cpu"))
    >>> sorted(mon.sample())  # doctest: +SKIP
    ['cpu', 'proc_cpu', 'ram', 'rss_mb']
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import psutil
import torch

log = logging.getLogger(__name__)


class SystemMonitor:
    """Reads utilisation on demand (call :meth:`sample` about once a second).

    Args:
        device: the training device; NVML is tried for CUDA devices only.
        children: add the CPU of child processes (loader workers); listing them scans
            the process table, so it is refreshed every ``CHILD_REFRESH`` readings only.
    """

    CHILD_REFRESH = 10

    def __init__(self, device: torch.device, children: bool = True) -> None:
        self.device = device
        self.children = children
        self.readings = 0
        self.proc = psutil.Process()
        self.kids: dict[int, psutil.Process] = {}
        psutil.cpu_percent(None)
        self.proc.cpu_percent(None)
        self.nvml: Any = None
        self.handle: Any = None
        if device.type == "cuda":
            self._init_nvml()

    def _init_nvml(self) -> None:
        try:
            import pynvml  # optional: nvidia-ml-py

            pynvml.nvmlInit()
            index = (
                self.device.index if self.device.index is not None else torch.cuda.current_device()
            )
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self.nvml = pynvml
        except Exception:  # noqa: BLE001 - no NVML: utilisation is simply not recorded
            log.debug("health: NVML not available; GPU utilisation is not recorded", exc_info=True)
            self.nvml = None

    def _tree_cpu(self) -> float:
        total = self.proc.cpu_percent(None)
        if not self.children:
            return total
        self.readings += 1
        if self.readings % self.CHILD_REFRESH != 1:
            for k in list(self.kids.values()):
                try:
                    total += k.cpu_percent(None)
                except psutil.Error:
                    self.kids.pop(k.pid, None)
            return total
        try:
            children = self.proc.children(recursive=True)
        except psutil.Error:
            children = []
        alive = set()
        for c in children:
            alive.add(c.pid)
            if c.pid not in self.kids:
                self.kids[c.pid] = c
                with contextlib.suppress(psutil.Error):
                    c.cpu_percent(None)  # first call primes the counter
                continue
            with contextlib.suppress(psutil.Error):
                total += self.kids[c.pid].cpu_percent(None)
        self.kids = {p: k for p, k in self.kids.items() if p in alive}
        return total

    def sample(self) -> dict[str, float]:
        """One reading: ``cpu``, ``ram`` (machine %), ``proc_cpu`` (% of a core), ``rss_mb``,
        and on CUDA ``gpu`` (%, NVML only) and ``gpu_mem`` (%)."""
        out: dict[str, float] = {}
        try:
            out["cpu"] = psutil.cpu_percent(None)
            out["proc_cpu"] = round(self._tree_cpu(), 1)
            out["ram"] = psutil.virtual_memory().percent
            out["rss_mb"] = round(self.proc.memory_info().rss / 2**20, 1)
        except psutil.Error:
            pass
        if self.device.type == "cuda":
            out.update(self._gpu())
        return out

    def _gpu(self) -> dict[str, float]:
        if self.nvml is not None:
            try:
                util = self.nvml.nvmlDeviceGetUtilizationRates(self.handle)
                mem = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
                return {
                    "gpu": float(util.gpu),
                    "gpu_mem": round(100.0 * mem.used / max(mem.total, 1), 1),
                }
            except Exception:  # noqa: BLE001
                return {}
        try:
            total = torch.cuda.get_device_properties(self.device).total_memory
            return {"gpu_mem": round(100.0 * torch.cuda.memory_reserved(self.device) / total, 1)}
        except Exception:  # noqa: BLE001
            return {}
