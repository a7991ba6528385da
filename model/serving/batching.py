"""Dynamic batching: requests that arrive while the model is busy share its next pass.

There is no fixed wait: when the model is free, it takes everything queued so far (up to
max_batch_size texts). A lone request is served at once; under load, batches fill up.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace


@dataclass
class Pending:
    texts: list[str]
    top_k: int
    result: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DynamicBatcher:
    def __init__(self, predict: Callable[[list[str], int], list], max_batch_size: int):
        self._predict = predict
        self._max_batch_size = max_batch_size
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        # One inference thread: passes never overlap, the event loop stays free for I/O.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def predict(self, texts: list[str], top_k: int) -> list:
        pending = Pending(texts, top_k)
        await self._queue.put(pending)
        return await pending.result

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].texts)
            while size < self._max_batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
                size += len(batch[-1].texts)
            batch = [p for p in batch if not p.result.cancelled()]  # timed-out requests
            if batch:
                await loop.run_in_executor(self._executor, self._serve, batch)

    def _serve(self, batch: list[Pending]) -> None:
        """Runs on the inference thread; hands each request its share of the results."""
        texts = [text for pending in batch for text in pending.texts]
        top_k = max(pending.top_k for pending in batch)  # each request gets its own below
        try:
            predictions = self._predict(texts, top_k)
        except Exception as error:  # the model failed: every request in the pass fails
            for pending in batch:
                self._resolve(pending, error=error)
            return
        start = 0
        for pending in batch:
            share = predictions[start : start + len(pending.texts)]
            start += len(pending.texts)
            self._resolve(
                pending, result=[replace(p, top_k=p.top_k[: pending.top_k]) for p in share]
            )

    @staticmethod
    def _resolve(pending: Pending, result=None, error=None) -> None:
        loop = pending.result.get_loop()

        def settle():
            if pending.result.done():
                return
            if error is not None:
                pending.result.set_exception(error)
            else:
                pending.result.set_result(result)

        loop.call_soon_threadsafe(settle)
