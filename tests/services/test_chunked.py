"""Cutting batches under API limits (PutRecords, InvokeEndpoint)."""

from services.records import chunked


def test_chunks_respect_bytes_and_counts_and_keep_order():
    sizes = [4, 4, 4, 9, 1, 1, 1]
    assert chunked(sizes, lambda n: n, max_bytes=8) == [[4, 4], [4], [9], [1, 1, 1]]
    assert chunked(sizes, lambda n: n, max_bytes=100, max_items=3) == [[4, 4, 4], [9, 1, 1], [1]]
    assert chunked([], len, max_bytes=1) == []
