import asyncio
import random
import time

import numpy as np
import pytest

from model.data import length_grouped_batches
from model.serving.batching import DynamicBatcher
from model.serving.predictor import Prediction


def test_length_grouped_batches_cover_everything_once():
    lengths = [random.Random(i).randint(3, 120) for i in range(1000)]
    batches = length_grouped_batches(lengths, batch_size=32, seed=0, world_size=1)
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert all(len(batch) <= 32 for batch in batches)


def test_length_grouped_batches_pad_less_than_random_ones():
    rng = random.Random(0)
    lengths = [rng.randint(3, 120) for _ in range(3200)]
    batches = length_grouped_batches(lengths, batch_size=32, seed=0, world_size=1)
    order = list(range(3200))
    rng.shuffle(order)
    random_batches = [order[i : i + 32] for i in range(0, 3200, 32)]

    def padded_tokens(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded_tokens(batches) < 0.7 * padded_tokens(random_batches)


def test_length_grouped_batches_split_evenly_across_processes():
    batches = length_grouped_batches([5] * 100, batch_size=8, seed=3, world_size=4)
    assert len(batches) % 4 == 0
    assert batches == length_grouped_batches([5] * 100, batch_size=8, seed=3, world_size=4)
    assert batches != length_grouped_batches([5] * 100, batch_size=8, seed=4, world_size=4)


def fake_predict(calls: list):
    def predict(texts, top_k):
        calls.append(list(texts))
        return [
            Prediction(
                text, 1.0, [{"label": text, "score": 1.0}] * top_k, np.ones(2, np.float32), None
            )
            for text in texts
        ]

    return predict


def test_concurrent_requests_share_a_pass_and_get_their_own_results():
    calls = []

    async def scenario():
        batcher = DynamicBatcher(fake_predict(calls), max_batch_size=64)
        batcher.start()
        results = await asyncio.gather(
            *(batcher.predict([f"r{i}a", f"r{i}b"], top_k=1 + i % 3) for i in range(10))
        )
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    for i, result in enumerate(results):
        assert [p.label for p in result] == [f"r{i}a", f"r{i}b"]
        assert all(len(p.top_k) == 1 + i % 3 for p in result)
    assert len(calls) < 10, "requests were merged"
    assert sum(map(len, calls)) == 20


def test_batches_respect_the_size_limit():
    calls = []

    async def scenario():
        batcher = DynamicBatcher(fake_predict(calls), max_batch_size=4)
        batcher.start()
        await asyncio.gather(*(batcher.predict([f"t{i}"], top_k=1) for i in range(12)))
        await batcher.stop()

    asyncio.run(scenario())
    assert all(len(call) <= 4 for call in calls)


def test_a_model_error_fails_the_requests_of_that_pass_only():
    def predict(texts, top_k):
        if "boom" in texts:
            raise RuntimeError("model exploded")
        return fake_predict([])(texts, top_k)

    async def scenario():
        batcher = DynamicBatcher(predict, max_batch_size=1)
        batcher.start()
        with pytest.raises(RuntimeError, match="exploded"):
            await batcher.predict(["boom"], top_k=1)
        result = await batcher.predict(["fine"], top_k=1)
        await batcher.stop()
        return result

    assert asyncio.run(scenario())[0].label == "fine"


def test_a_large_request_spans_passes_and_keeps_its_order():
    calls = []
    texts = [f"t{i}" * (i % 7 + 1) for i in range(30)]

    async def scenario():
        batcher = DynamicBatcher(fake_predict(calls), max_batch_size=8)
        batcher.start()
        result = await batcher.predict(texts, top_k=1)
        await batcher.stop()
        return result

    assert [p.label for p in asyncio.run(scenario())] == texts
    assert [len(call) for call in calls] == [8, 8, 8, 6]
    assert calls[0] == sorted(calls[0], key=len), "shortest first: little padding"


def test_a_timed_out_request_is_dropped_at_the_next_pass_and_later_ones_answer():
    calls = []

    def slow_predict(texts, top_k):
        time.sleep(0.01)
        return fake_predict(calls)(texts, top_k)

    async def scenario():
        batcher = DynamicBatcher(slow_predict, max_batch_size=4)
        batcher.start()
        huge = [f"h{i}" for i in range(4000)]  # 1,000 passes: 10 s if nobody dropped it
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.predict(huge, top_k=1), timeout=0.05)
        started = time.monotonic()
        later = await asyncio.wait_for(batcher.predict(["later"], top_k=1), timeout=1)
        waited = time.monotonic() - started
        await batcher.stop()
        return later, waited

    later, waited = asyncio.run(scenario())
    assert later[0].label == "later"
    assert waited < 0.5
    assert sum(len(call) for call in calls) < 100, "the timed-out request's work was dropped"


def test_a_request_the_model_cannot_take_fails_alone():
    calls = []

    def predict(texts, top_k):
        calls.append(list(texts))
        if "poison" in texts:
            raise UnicodeEncodeError("utf-8", "poison", 0, 1, "surrogates not allowed")
        return fake_predict([])(texts, top_k)

    async def scenario():
        batcher = DynamicBatcher(predict, max_batch_size=64)
        batcher.start()
        requests = [["fine"], ["poison"], ["also fine", "too"]]
        results = await asyncio.gather(
            *(batcher.predict(texts, top_k=1) for texts in requests), return_exceptions=True
        )
        await batcher.stop()
        return results

    fine, poisoned, also_fine = asyncio.run(scenario())
    assert calls[0] == ["fine", "poison", "too", "also fine"], "they shared a pass"
    assert isinstance(poisoned, UnicodeEncodeError)
    assert [p.label for p in fine] == ["fine"]
    assert [p.label for p in also_fine] == ["also fine", "too"]


def staggered_arrivals(gather_seconds: float) -> list[list[str]]:
    """Three requests 5 ms apart to an idle batcher; the passes the model saw."""
    calls = []

    async def scenario():
        batcher = DynamicBatcher(fake_predict(calls), 64, gather_seconds=gather_seconds)
        batcher.start()

        async def later(text: str, delay: float):
            await asyncio.sleep(delay)
            return await batcher.predict([text], top_k=1)

        await asyncio.gather(later("a", 0), later("b", 0.005), later("c", 0.01))
        await batcher.stop()

    asyncio.run(scenario())
    return calls


def test_a_request_to_an_idle_model_waits_briefly_for_company():
    assert staggered_arrivals(gather_seconds=0.5) == [["a", "b", "c"]]
    assert staggered_arrivals(gather_seconds=0)[0] == ["a"], "without a window: alone"


def test_the_wait_ends_when_a_pass_is_full():
    calls = []

    async def scenario():
        batcher = DynamicBatcher(fake_predict(calls), max_batch_size=2, gather_seconds=30)
        batcher.start()
        results = await asyncio.wait_for(
            asyncio.gather(batcher.predict(["a"], top_k=1), batcher.predict(["b"], top_k=1)),
            timeout=5,
        )
        await batcher.stop()
        return results

    assert [r[0].label for r in asyncio.run(scenario())] == ["a", "b"]
    assert calls == [["a", "b"]]
