"""What training costs, measured by the process that trains: seconds per iteration and peak memory.

The per-epoch record of ``train_log.jsonl`` carries both (``iteration_s_median``, ``peak_memory_mb``,
``memory_kind``), so a run measures itself; a comparison trains each variant in its own process, which makes each
peak its own.
"""

from __future__ import annotations

import resource
import statistics
import time

import torch


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: the most torch has held allocated on ``device``; CPU: this process's peak resident memory (torch and
    everything else in the process; data-loading worker processes not included). MiB, since the process started."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def memory_kind(device: torch.device) -> str:
    """What :func:`peak_memory_mb` measures on ``device``, in words."""
    return "cuda max_memory_allocated" if device.type == "cuda" else "process max RSS"


class IterationClock:
    """Wall time between the ends of consecutive iterations, data loading included (the first interval starts when
    the clock is made). On CUDA the ends are events on the device's stream, read once at :meth:`summary`, so the
    clock adds no synchronisation to the loop."""

    def __init__(self, device: torch.device):
        self.device = device
        self._cuda = device.type == "cuda"
        self._marks: list = []
        self._mark()

    def _mark(self) -> None:
        if self._cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter())

    def tick(self) -> None:
        """Call once at the end of each iteration."""
        self._mark()

    def intervals(self) -> list[float]:
        """Seconds of each iteration so far."""
        if self._cuda:
            self._marks[-1].synchronize()
            return [a.elapsed_time(b) / 1000 for a, b in zip(self._marks, self._marks[1:])]
        return [b - a for a, b in zip(self._marks, self._marks[1:])]

    def summary(self) -> dict:
        """``iteration_s_median`` (None before the first tick), ``peak_memory_mb``, ``memory_kind``."""
        times = self.intervals()
        return {"iteration_s_median": round(statistics.median(times), 4) if times else None,
                "peak_memory_mb": round(peak_memory_mb(self.device), 1), "memory_kind": memory_kind(self.device)}
