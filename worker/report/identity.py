"""64-bit identities of (bucket, key) pairs, computed on Arrow's string buffers with numpy.

Comparing two nights means matching a million keys against a million. An Arrow hash join or
``index_in`` holds both nights' key strings and a hash table of one of them (about 190 MB more
for a million 40-character keys, ``make bench-report``); a 64-bit number per row is 8 MB, and
the previous night's keys need not be kept at all. Matching is then a sort and a binary search.

The hash is a polynomial over the key's bytes modulo 2^64 with an odd multiplier, finished with
SplitMix64's mixer, and the bucket's own hash mixed in. OSS keys are at most 1,023 bytes, short
of the 2,048 bytes from which Thue-Morse strings collide for any odd multiplier modulo 2^64, so a
collision needs chance: for two nights of a million objects each, about 1 in 10^7.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["string_hashes", "identities", "MAX_KEY_BYTES"]

#: OSS's limit on a key's length (bytes of UTF-8); longer strings are hashed on their first bytes.
MAX_KEY_BYTES = 1023
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: 2^64 / golden ratio
_POWERS = np.cumprod(np.full(MAX_KEY_BYTES + 1, _MULTIPLIER, dtype=np.uint64), dtype=np.uint64)


def _mix(h: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit moves every output bit."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def string_hashes(strings: pa.Array) -> np.ndarray:
    """A uint64 per string of a string array without nulls (wrapping arithmetic is the point)."""
    strings = strings.cast(pa.string())
    n = len(strings)
    if not n:
        return np.empty(0, dtype=np.uint64)
    _, offsets_buffer, data_buffer = strings.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[strings.offset:strings.offset + n + 1].astype(np.int64)
    start = offsets[0]
    lengths = np.diff(offsets)
    data = (np.frombuffer(data_buffer, dtype=np.uint8)[start:offsets[-1]] if data_buffer is not None
            else np.empty(0, dtype=np.uint8))
    owner = np.repeat(np.arange(n), lengths)
    position = np.arange(len(data)) - (offsets[:-1] - start)[owner]
    with np.errstate(over="ignore"):
        terms = (data.astype(np.uint64) + np.uint64(1)) * _POWERS[np.minimum(position, MAX_KEY_BYTES)]
        sums = _segment_sums(terms, lengths, np.zeros(n, dtype=np.uint64))
        return _mix(sums ^ lengths.astype(np.uint64))


def _segment_sums(terms: np.ndarray, lengths: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Sum of each string's terms (``reduceat`` on the non-empty ones; empty strings sum to 0)."""
    filled = lengths > 0
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[filled]
    out[filled] = np.add.reduceat(terms, starts)
    return out


def identities(buckets: np.ndarray, bucket_names: list[str], keys: pa.Array) -> np.ndarray:
    """The identity of each (bucket code, key) row: the key's hash mixed with its bucket's."""
    bucket_hashes = string_hashes(pa.array(bucket_names, type=pa.string()))
    with np.errstate(over="ignore"):
        return _mix(string_hashes(keys) ^ (bucket_hashes[buckets] * _MULTIPLIER))
