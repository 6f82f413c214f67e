"""Counting weighted keys (and summing a 3-vector per key), in parallel over buckets (numba).

Hashing millions of keys into one large table is bound by cache misses. Sorting them first into buckets (a parallel
counting sort) lets every thread dedupe its own buckets in a small table that stays in cache, without locks.
"""

from __future__ import annotations

import numba
import numpy as np

_EMPTY = -1
_GOLDEN = 0x9E3779B97F4A7C15


@numba.njit(cache=True, parallel=True)
def bucket_by(part, n_parts, keys, weights, sums, n_chunks):
    """Stable counting sort of (keys, weights, sums) by ``part`` (entries with part < 0 are dropped).

    part: (N,) int; keys: (N,); weights: (N,); sums: (N, 3); n_chunks: pieces of the input counted in parallel.
    Returns (keys (M,), weights (M,), sums (M, 3), starts (n_parts + 1,) int64): bucket p is
    ``[starts[p], starts[p + 1])``.
    """
    n = part.shape[0]
    n_chunks = max(1, min(n_chunks, n // 65536 + 1))
    chunk = (n + n_chunks - 1) // n_chunks
    hist = np.zeros((n_chunks, n_parts), np.int64)
    for c in numba.prange(n_chunks):
        for r in range(c * chunk, min(n, (c + 1) * chunk)):
            p = part[r]
            if p >= 0:
                hist[c, p] += 1
    starts = np.zeros(n_parts + 1, np.int64)
    offsets = np.empty((n_chunks, n_parts), np.int64)
    running = 0
    for p in range(n_parts):
        starts[p] = running
        for c in range(n_chunks):
            offsets[c, p] = running
            running += hist[c, p]
    starts[n_parts] = running
    keys_out = np.empty(running, keys.dtype)
    weights_out = np.empty(running, weights.dtype)
    sums_out = np.empty((running, 3), sums.dtype)
    for c in numba.prange(n_chunks):
        for r in range(c * chunk, min(n, (c + 1) * chunk)):
            p = part[r]
            if p >= 0:
                j = offsets[c, p]
                keys_out[j] = keys[r]
                weights_out[j] = weights[r]
                sums_out[j, 0] = sums[r, 0]
                sums_out[j, 1] = sums[r, 1]
                sums_out[j, 2] = sums[r, 2]
                offsets[c, p] = j + 1
    return keys_out, weights_out, sums_out, starts


@numba.njit(cache=True, inline="always")
def _hash(key):
    return np.uint64(key) * np.uint64(_GOLDEN)


@numba.njit(cache=True)
def _unique_into(keys, weights, sums, lo, hi, out_keys, out_weights, out_sums):
    """Sum weights and sums per distinct key of ``keys[lo:hi]`` into ``out_*[lo:...]``; returns how many distinct
    keys."""
    n = hi - lo
    capacity = 64
    while capacity < 2 * n:
        capacity *= 2
    mask = capacity - 1
    table = np.full(capacity, _EMPTY, np.int64)
    slot_of = np.empty(capacity, np.int64)
    m = 0
    last_key = _EMPTY
    last_index = 0
    for r in range(lo, hi):
        key = keys[r]
        if key == last_key:  # neighbouring pixels mostly fall in the same cell
            out_weights[last_index] += weights[r]
            for a in range(3):
                out_sums[last_index, a] += sums[r, a]
            continue
        s = np.int64((_hash(key) >> np.uint64(16)) & np.uint64(mask))
        while table[s] != _EMPTY and table[s] != key:
            s = (s + 1) & mask
        if table[s] == _EMPTY:
            table[s] = key
            slot_of[s] = lo + m
            out_keys[lo + m] = key
            out_weights[lo + m] = 0
            for a in range(3):
                out_sums[lo + m, a] = 0.0
            m += 1
        index = slot_of[s]
        out_weights[index] += weights[r]
        for a in range(3):
            out_sums[index, a] += sums[r, a]
        last_key = key
        last_index = index
    return m


def count_unique(
    keys: np.ndarray, weights: np.ndarray, sums: np.ndarray, part_shift: int = -1, part_bits: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums of ``weights`` (uint32) and of ``sums`` ((N, 3) float64) per distinct non-negative key (int64), in
    parallel over buckets.

    Buckets are ``(key >> part_shift) mod 2**part_bits`` when ``part_shift >= 0`` (keys whose high bits hold a
    coordinate then come out grouped in slabs of space, which keeps later scattering cache-friendly), else a hash.
    Returns (unique keys (M,) int64, weights (M,) uint32, sums (M, 3) float64), grouped by bucket, in order of first
    appearance within one.
    """
    return _count_unique(keys, weights, sums, part_shift, part_bits, 4 * numba.get_num_threads())


@numba.njit(cache=True, parallel=True)
def _count_unique(keys, weights, sums, part_shift, part_bits, n_chunks):
    n = keys.shape[0]
    n_parts = 1 << part_bits
    part = np.empty(n, np.int64)
    shift = np.uint64(64 - part_bits)
    for r in numba.prange(n):
        k = keys[r]
        if k < 0:
            part[r] = -1
        elif part_shift >= 0:
            part[r] = (k >> part_shift) & (n_parts - 1)
        else:
            part[r] = np.int64(_hash(k) >> shift)
    bk, bw, bs, starts = bucket_by(part, n_parts, keys, weights, sums, n_chunks)
    out_keys = np.empty(bk.shape[0], np.int64)
    out_weights = np.empty(bk.shape[0], np.uint32)
    out_sums = np.empty((bk.shape[0], 3), np.float64)
    found = np.zeros(n_parts, np.int64)
    for p in numba.prange(n_parts):
        found[p] = _unique_into(bk, bw, bs, starts[p], starts[p + 1], out_keys, out_weights, out_sums)
    total = 0
    for p in range(n_parts):
        total += found[p]
    keys_final = np.empty(total, np.int64)
    weights_final = np.empty(total, np.uint32)
    sums_final = np.empty((total, 3), np.float64)
    j = 0
    for p in range(n_parts):
        for r in range(starts[p], starts[p] + found[p]):
            keys_final[j] = out_keys[r]
            weights_final[j] = out_weights[r]
            sums_final[j] = out_sums[r]
            j += 1
    return keys_final, weights_final, sums_final
