"""64-bit identities of (bucket, key): what matching two nights relies on."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from worker.report.identity import MAX_KEY_BYTES, identities, string_hashes


def test_a_string_hashes_the_same_wherever_it_sits() -> None:
    keys = pa.array([f"photos/{i:05d}.jpg" for i in range(1000)])
    whole = string_hashes(keys)
    assert (string_hashes(keys.slice(250, 300)) == whole[250:550]).all()
    chunked = pa.chunked_array([keys.slice(0, 10), keys.slice(10)])
    assert (np.concatenate([string_hashes(c) for c in chunked.chunks]) == whole).all()
    assert (string_hashes(pa.array(["photos/00007.jpg"])) == whole[7]).all()


def test_near_identical_keys_differ() -> None:
    base = "a/" + "x" * 200
    variants = [base, base + "y", "b" + base[1:], base[:-1] + "z", base[:100] + "_" + base[101:], base.upper(),
                "a/é.jpg", "a/e\u0301.jpg", "", "/", "//", "a", "b", "ab", "ba", "aa", "\x00", "\x00\x00"]
    assert len(set(string_hashes(pa.array(variants)).tolist())) == len(variants)


def test_a_million_realistic_keys_do_not_collide() -> None:
    keys = pa.array([f"p{i % 40}/f{i % 2000}/2026/11/IMG_{i:08d}.jpg" for i in range(1_000_000)])
    assert len(np.unique(string_hashes(keys))) == 1_000_000


def test_the_bucket_is_part_of_the_identity() -> None:
    keys = pa.array(["same.jpg", "same.jpg", "same.jpg"])
    ids = identities(np.array([0, 1, 0]), ["left", "right"], keys)
    assert ids[0] == ids[2] != ids[1]
    # codes are positions in the names list: the same name at another position gives the same identity
    assert identities(np.array([1]), ["other", "left"], keys.slice(0, 1))[0] == ids[0]


def test_keys_at_oss_length_limit_are_hashed_whole() -> None:
    long = "k" * MAX_KEY_BYTES
    hashes = string_hashes(pa.array([long, long[:-1] + "j", "j" + long[1:]]))
    assert len(set(hashes.tolist())) == 3


def test_empty_input() -> None:
    assert string_hashes(pa.array([], pa.string())).shape == (0,)
