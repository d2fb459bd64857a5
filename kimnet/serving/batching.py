"""Server-side batching of concurrent predict requests (TF Serving's basic batch scheduler).

Requests for the same model version and signature whose inputs have the same
dtypes and per-example shapes share a queue. A queue is run as one batch when it
holds ``max_batch_size`` examples or ``batch_timeout_ms`` after its first request
arrived, whichever comes first. Batches run in a thread pool, off the event loop.
A request larger than ``max_batch_size`` runs on its own. If a batch fails, its
requests are rerun one by one so that a bad request (e.g. undecodable image
bytes) fails alone and doesn't take the requests it was batched with along.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from kimnet.errors import InputError

Inputs = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]
Runner = Callable[[Inputs], Outputs]


@dataclass
class _Pending:
    inputs: Inputs
    rows: int
    future: asyncio.Future


@dataclass
class _Queue:
    runner: Runner
    items: list[_Pending] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


def batch_key(model_key: Hashable, signature: str, inputs: Inputs) -> tuple:
    """Requests with equal keys can be concatenated along the batch dimension."""
    return (
        model_key,
        signature,
        tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items())),
    )


class Batcher:
    """Runs predict calls in ``executor``, batching concurrent ones when ``enabled``.

    Args:
        executor: Thread pool the model runs in.
        enabled: False runs every request on its own (still off the event loop).
        max_batch_size: Most examples in one batch.
        batch_timeout_ms: Longest a request waits for others to join its batch.
        on_batch: Called with the number of examples of every model run (metrics).
    """

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        *,
        enabled: bool = True,
        max_batch_size: int = 32,
        batch_timeout_ms: float = 5.0,
        on_batch: Callable[[int], None] | None = None,
    ):
        if max_batch_size < 1:
            raise InputError(f"max_batch_size must be at least 1, got {max_batch_size}.")
        if batch_timeout_ms < 0:
            raise InputError(f"batch_timeout_ms must be >= 0, got {batch_timeout_ms}.")
        self.executor = executor
        self.enabled = enabled
        self.max_batch_size = max_batch_size
        self.batch_timeout_s = batch_timeout_ms / 1000.0
        self._queues: dict[tuple, _Queue] = {}
        self.batches_run = 0  # statistics, for tests and logs
        self.examples_run = 0
        self.on_batch = on_batch

    def _count(self, rows: int) -> None:
        self.batches_run += 1
        self.examples_run += rows
        if self.on_batch is not None:
            self.on_batch(rows)

    async def run(self, key: tuple, runner: Runner, inputs: Inputs, rows: int) -> Outputs:
        """The outputs of ``runner(inputs)`` (``rows`` examples), possibly run in a batch."""
        loop = asyncio.get_running_loop()
        if not self.enabled or rows >= self.max_batch_size:
            self._count(rows)
            return await loop.run_in_executor(self.executor, runner, inputs)
        queue = self._queues.get(key)
        if queue is not None and queue.rows + rows > self.max_batch_size:
            self._flush(key)
            queue = None
        if queue is None:
            queue = self._queues[key] = _Queue(runner=runner)
        future = loop.create_future()
        queue.items.append(_Pending(inputs, rows, future))
        queue.rows += rows
        if queue.rows >= self.max_batch_size:
            self._flush(key)
        elif queue.timer is None:
            queue.timer = loop.call_later(self.batch_timeout_s, self._flush, key)
        return await future

    def _flush(self, key: tuple) -> None:
        queue = self._queues.pop(key, None)
        if queue is None:
            return
        if queue.timer is not None:
            queue.timer.cancel()
        items = [item for item in queue.items if not item.future.done()]  # skip cancelled
        if items:
            self._count(sum(item.rows for item in items))
            task = asyncio.ensure_future(self._execute(queue.runner, items))
            task.add_done_callback(_log_unexpected)

    async def _execute(self, runner: Runner, items: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, _run_batch, runner, items)
        except Exception as error:  # e.g. the executor shut down: never leave a request hanging
            results = [error] * len(items)
        for item, result in zip(items, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)


def _run_batch(runner: Runner, items: list[_Pending]) -> list[Outputs | BaseException]:
    """Runs ``items`` as one batch in a worker thread; per-item results or exceptions."""
    if len(items) == 1:
        try:
            return [runner(items[0].inputs)]
        except Exception as error:
            return [error]
    merged = {
        key: np.concatenate([item.inputs[key] for item in items], axis=0) for key in items[0].inputs
    }
    total = sum(item.rows for item in items)
    try:
        outputs = runner(merged)
        if any(np.ndim(v) == 0 or np.shape(v)[0] != total for v in outputs.values()):
            raise _NotBatchMajorError()
    except Exception:  # rerun one by one: only the bad request(s) fail
        results: list[Outputs | BaseException] = []
        for item in items:
            try:
                results.append(runner(item.inputs))
            except Exception as error:
                results.append(error)
        return results
    results = []
    start = 0
    for item in items:
        results.append({k: v[start : start + item.rows] for k, v in outputs.items()})
        start += item.rows
    return results


class _NotBatchMajorError(Exception):
    """Outputs whose first dimension isn't the batch can't be split per request."""


def _log_unexpected(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        import logging

        logging.getLogger("kimnet.serving").error(
            "Batch execution failed unexpectedly", exc_info=task.exception()
        )
