"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time


def median_ms(function, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``function()``, in milliseconds (2 decimals)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)
