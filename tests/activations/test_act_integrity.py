"""A damaged cache is refused with a message naming the file and the fix; never read as garbage."""

import dataclasses
import json
import os

import numpy as np
import pytest

from finsae.activations import build_activations, open_store
from finsae.errors import CacheCorruptError


@pytest.fixture
def built(tiny, corpus, cfg, tmp_path):
    """A layer split over several small shards, plus a [CLS]/[SEP] store."""
    cfg = dataclasses.replace(cfg, shard_mb=0.01, store_special=True)  # 163 rows of d=32 per shard
    store = build_activations(tiny, corpus, [0], tmp_path, cfg, progress=False)[0]
    assert len(store.manifest["shards"]) >= 3
    return tiny, corpus, cfg, tmp_path, store


def flip_byte(path, offset):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))


def test_sharded_reads_equal_one_array(built):
    *_, store = built
    full = np.asarray(store.array)
    assert full.shape == (len(store), 32)
    idx = np.array([0, 5, 162, 163, 164, 400, len(store) - 1])
    np.testing.assert_array_equal(store.array[idx], full[idx])
    np.testing.assert_array_equal(store.array.take(idx[::-1]), full[idx[::-1]])
    np.testing.assert_array_equal(store.array[150:300], full[150:300])
    np.testing.assert_array_equal(store.array[-1], full[-1])
    with pytest.raises(IndexError):
        store.array[[len(store)]]


def test_first_open_verifies_checksums_then_marks(built):
    *_, store = built
    assert not (store.path / "verified.json").exists()  # the build itself hashed while writing
    open_store(store.path)
    assert (store.path / "verified.json").exists()


def test_truncated_shard_is_refused(built):
    tiny, corpus, cfg, root, store = built
    shard = store.path / store.manifest["shards"][1]["file"]
    with open(shard, "r+b") as fh:
        fh.truncate(shard.stat().st_size - 64)
    for verify in (False, None, True):
        with pytest.raises(CacheCorruptError, match=r"shard_00001\.npy.*rebuild_cache=true"):
            open_store(store.path, verify=verify)
    with pytest.raises(CacheCorruptError, match="rebuild_cache=true"):
        build_activations(tiny, corpus, [0], root, cfg, progress=False)
    fixed = build_activations(tiny, corpus, [0], root, cfg, rebuild=True, progress=False)[0]
    assert fixed.fresh
    open_store(fixed.path, verify=True)


def test_flipped_data_bytes_are_caught_by_checksums(built):
    *_, store = built
    shard = store.path / store.manifest["shards"][0]["file"]
    flip_byte(shard, shard.stat().st_size - 10)
    with pytest.raises(CacheCorruptError, match=r"shard_00000\.npy.*checksum"):
        open_store(store.path)  # first open after the build: full verification
    # After a successful first verification, data flips are found only with verify=True (documented).
    flip_byte(shard, shard.stat().st_size - 10)
    open_store(store.path)
    flip_byte(shard, shard.stat().st_size - 10)
    open_store(store.path, verify=False)
    with pytest.raises(CacheCorruptError, match="checksum"):
        open_store(store.path, verify=True)


def test_flipped_header_is_caught_cheaply(built):
    *_, store = built
    open_store(store.path)  # verified once
    shard = store.path / store.manifest["shards"][2]["file"]
    with open(shard, "r+b") as fh:
        header = fh.read(128)
    pos = header.index(b"(") + 1  # first digit of the shape
    flip_byte(shard, pos)
    with pytest.raises(CacheCorruptError, match=r"shard_00002\.npy"):
        open_store(store.path, verify=False)


def test_special_store_is_checked_too(built):
    *_, store = built
    special = store.path / store.manifest["special"]["shards"][0]["file"]
    os.truncate(special, 100)
    with pytest.raises(CacheCorruptError, match=r"special_00000\.npy"):
        open_store(store.path, verify=False)


def test_missing_or_garbled_manifest(built):
    *_, store = built
    (store.path / "manifest.json").write_text("{not json")
    with pytest.raises(CacheCorruptError, match="manifest.json.*rebuild_cache=true"):
        open_store(store.path)
    (store.path / "manifest.json").unlink()
    with pytest.raises(CacheCorruptError, match="not a finished cache entry"):
        open_store(store.path)


def test_damaged_token_table_is_refused_and_rebuilt(built):
    tiny, corpus, cfg, root, store = built
    table = store.table.path / "tokens.parquet"
    with open(table, "ab") as fh:
        fh.write(b"junk")
    with pytest.raises(CacheCorruptError, match=r"tokens\.parquet"):
        open_store(store.path)
    with pytest.raises(CacheCorruptError):
        build_activations(tiny, corpus, [0], root, cfg, progress=False)
    fixed = build_activations(tiny, corpus, [0], root, cfg, rebuild=True, progress=False)[0]
    assert fixed.table.content_hash == store.table.content_hash
    open_store(fixed.path, verify=True)


def test_table_swapped_under_an_entry_is_refused(built):
    *_, store = built
    manifest = json.loads((store.path / "manifest.json").read_text())
    manifest["token_table"]["content_hash"] = "0" * 16
    (store.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheCorruptError, match="token table"):
        open_store(store.path)


def test_failed_build_leaves_no_entry(tiny, corpus, cfg, tmp_path, monkeypatch):
    import finsae.activations.extract as extract

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(extract, "hidden_states", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        build_activations(tiny, corpus, [0], tmp_path, cfg, progress=False)
    leftovers = [p.name for p in tmp_path.iterdir() if p.is_dir() and p.name != "tokens"]
    assert leftovers == []  # no half entry, no staging directory


def test_verify_rehashes_a_store_that_passed_its_first_check(built):
    tiny, corpus, cfg, root, store = built
    open_store(store.path)  # first open: hashed and marked verified
    shard = store.path / store.manifest["shards"][1]["file"]
    flip_byte(shard, shard.stat().st_size - 10)  # same size: only a hash can tell
    assert len(build_activations(tiny, corpus, [0], root, cfg, progress=False)[0]) == len(store)  # not re-hashed
    with pytest.raises(CacheCorruptError, match=r"shard_00001\.npy"):
        build_activations(tiny, corpus, [0], root, cfg, progress=False, verify=True)
