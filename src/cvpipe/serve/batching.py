"""Micro-batching: concurrent requests share one model run.

Requests put their prepared input on an asyncio queue and await a future. One collector
task takes the first waiting input, then everything else already queued (up to
``max_batch``), waiting at most ``max_wait_s`` for more, and runs the batch in a single
inference thread. Under load the queue fills while the previous batch runs, so batches
grow with concurrency; a lone request pays at most ``max_wait_s`` extra.

Example:
    >>> b = MicroBatcher(runtime, max_batch=16, max_wait_s=0.002)  # doctest: +SKIP
    >>> await b.start(); out = await b.submit(x)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cvpipe.serve.metrics import Metrics
from cvpipe.serve.runtime import Runtime, timed_run

log = logging.getLogger(__name__)


class MicroBatcher:
    """Collects inputs from concurrent requests into batches for ``runtime.run``.

    Args:
        runtime: the loaded model.
        max_batch: largest batch (1 when the runtime is not batchable).
        max_wait_s: how long a batch waits for more inputs after the first.
        metrics: where batch sizes and model times go.
    """

    def __init__(
        self,
        runtime: Runtime,
        max_batch: int = 16,
        max_wait_s: float = 0.002,
        metrics: Metrics | None = None,
    ) -> None:
        self.runtime = runtime
        self.max_batch = max_batch if runtime.batchable else 1
        self.max_wait_s = max_wait_s
        self.metrics = metrics or Metrics()
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[tuple[Any, float]]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cvpipe-infer")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="cvpipe-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def submit(self, x: Any) -> tuple[Any, float]:
        """Run one prepared input; returns ``(raw output, seconds of its batch's run)``."""
        if self._queue is None:
            raise RuntimeError("batcher not started")
        fut: asyncio.Future[tuple[Any, float]] = asyncio.get_running_loop().create_future()
        await self._queue.put((x, fut))
        return await fut

    async def _collect(self) -> list[tuple[Any, asyncio.Future[tuple[Any, float]]]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [(x, f) for x, f in batch if not f.done()]
            if not live:
                continue
            try:
                outputs, seconds = await loop.run_in_executor(
                    self._executor, timed_run, self.runtime, [x for x, _ in live]
                )
            except Exception as exc:
                log.exception("model run failed for a batch of %d", len(live))
                for _, f in live:
                    if not f.done():
                        f.set_exception(exc)
                continue
            self.metrics.observe_batch(len(live), seconds)
            for (_, f), out in zip(live, outputs, strict=True):
                if not f.done():
                    f.set_result((out, seconds))
