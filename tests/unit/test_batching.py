from __future__ import annotations

from segcli.batching import MAX_LOCAL_BATCH_BYTES, Batcher, Entry
from segcli.model import MaskItem, Source


def entry(ref: str, mask: str, size: int = 0) -> Entry:
    item = MaskItem(reference_id=ref, mask=mask, segments=(), source=Source("m", 1))
    return Entry(item=item, fingerprint=ref, data=b"x" * size if size else None)


def test_remote_and_local_never_mix_and_respect_sizes() -> None:
    batcher = Batcher(remote_size=20, local_size=10)
    full = []
    for i in range(45):
        full += batcher.add(entry(f"r{i}", f"s3://b/{i}.png"))
        full += batcher.add(entry(f"l{i}", f"/masks/{i}.png", 10))
    full += batcher.drain()
    remote = [len(b) for b in full if b.remote]
    local = [len(b) for b in full if not b.remote]
    assert remote == [20, 20, 5]
    assert sorted(local, reverse=True) == [10, 10, 10, 10, 5]
    for b in full:
        assert all(e.item.is_remote == b.remote for e in b.entries)


def test_protocol_limits_cap_requested_sizes() -> None:
    batcher = Batcher(remote_size=50, local_size=99)
    assert (batcher.remote_size, batcher.local_size) == (20, 10)


def test_local_batch_closes_before_byte_limit() -> None:
    batcher = Batcher(remote_size=20, local_size=10)
    big = MAX_LOCAL_BATCH_BYTES // 2 + 1
    assert batcher.add(entry("a", "/a.png", big)) == []
    out = batcher.add(entry("b", "/b.png", big))
    assert [[e.item.reference_id for e in b.entries] for b in out] == [["a"]]
    assert [e.item.reference_id for b in batcher.drain() for e in b.entries] == ["b"]


def test_size_one_batches_each_item() -> None:
    batcher = Batcher(remote_size=1, local_size=1)
    assert len(batcher.add(entry("a", "/a.png", 5))) == 1
    assert len(batcher.add(entry("b", "s3://x/b.png"))) == 1
    assert batcher.drain() == []


def test_split_halves_keep_order() -> None:
    batcher = Batcher(remote_size=20, local_size=10)
    for i in range(5):
        batcher.add(entry(f"l{i}", f"/m/{i}.png", 3))
    (batch,) = batcher.drain()
    first, second = batch.split()
    assert [e.item.reference_id for e in first.entries] == ["l0", "l1"]
    assert [e.item.reference_id for e in second.entries] == ["l2", "l3", "l4"]
    assert first.size_bytes == 6 and second.size_bytes == 9
