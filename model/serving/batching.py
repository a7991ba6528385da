"""Dynamic batching: requests that arrive while the model is busy share its next pass.

When the model is free, its next pass takes up to max_batch_size texts from the requests
queued so far, oldest first. Only when nothing is queued does the first request to come
wait, at most gather_seconds, for others: under load the clients of the last pass send
their next requests a moment after their answers, and a pass started on the first of them
alone would make all the others wait one more pass. A request larger than that spans
several passes (its texts shortest first, so each pass pads little), and one that timed out
is dropped at the next pass boundary: nobody waits behind work nobody waits for.
"""

import asyncio
from collections import deque
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
    taken: int = 0  # how many of its texts passes have taken so far
    order: list[int] = field(init=False)
    predictions: list = field(init=False)

    def __post_init__(self):
        self.order = sorted(range(len(self.texts)), key=lambda i: len(self.texts[i]))
        self.predictions = [None] * len(self.texts)

    def take(self, count: int) -> list[int]:
        """The indices of its next `count` texts, shortest first."""
        indices = self.order[self.taken : self.taken + count]
        self.taken += len(indices)
        return indices

    @property
    def all_taken(self) -> bool:
        return self.taken == len(self.texts)


Share = tuple[Pending, list[int]]  # a request and the indices of its texts in one pass


class DynamicBatcher:
    def __init__(
        self,
        predict: Callable[[list[str], int], list],
        max_batch_size: int,
        gather_seconds: float = 0.0,
    ):
        self._predict = predict
        self._max_batch_size = max_batch_size
        self._gather_seconds = gather_seconds
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
        waiting: deque[Pending] = deque()
        while True:
            if not waiting:
                waiting.append(await self._queue.get())
                await self._gather(waiting)
            while not self._queue.empty():
                waiting.append(self._queue.get_nowait())
            # Timed out (cancelled) or failed: whatever they had left is dropped here.
            waiting = deque(pending for pending in waiting if not pending.result.done())
            if waiting:
                await loop.run_in_executor(self._executor, self._serve, self._next_pass(waiting))

    async def _gather(self, waiting: deque[Pending]) -> None:
        """More requests for up to gather_seconds, or until they fill a pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._gather_seconds
        texts = len(waiting[0].texts)
        while texts < self._max_batch_size and (left := deadline - loop.time()) > 0:
            try:
                waiting.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                return
            texts += len(waiting[-1].texts)

    def _next_pass(self, waiting: deque[Pending]) -> list[Share]:
        shares, room = [], self._max_batch_size
        while waiting and room:
            indices = waiting[0].take(room)
            shares.append((waiting[0], indices))
            room -= len(indices)
            if waiting[0].all_taken:
                waiting.popleft()
        return shares

    def _serve(self, shares: list[Share]) -> None:
        """Runs on the inference thread; hands each request its share of the results."""
        texts = [pending.texts[i] for pending, indices in shares for i in indices]
        top_k = max(pending.top_k for pending, _ in shares)  # each gets its own below
        try:
            predictions = self._predict(texts, top_k)
        except Exception as error:
            if len(shares) > 1:  # one request's texts may be the cause: let it fail alone
                for share in shares:
                    self._serve([share])
            else:
                self._resolve(shares[0][0], error=error)
            return
        results = iter(predictions)
        for pending, indices in shares:
            for i in indices:
                prediction = next(results)
                k = pending.top_k
                pending.predictions[i] = replace(prediction, top_k=prediction.top_k[:k])
            if pending.all_taken:
                self._resolve(pending, result=pending.predictions)

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
