"""Worker processes that never outlive the command that started them.

- :func:`die_with_parent` runs first in every pool worker: on Linux the kernel kills the worker when its parent
  dies, however it dies (SIGKILL included), and Ctrl-C is left to the parent, which stops its workers itself;
- :func:`stop_pool` ends a pool's workers now, mid-task, when the parent fails or is interrupted;
- :func:`terminate_as_interrupt` makes SIGTERM unwind the parent like Ctrl-C, so its clean-up runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Iterator

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Call at the start of a worker process (a pool's initializer) with the parent's pid.

    Asks the kernel to SIGKILL this process when its parent exits (``prctl(PR_SET_PDEATHSIG)``; Linux only) and
    ignores SIGINT: a Ctrl-C reaches the whole process group, and the parent, not each worker, decides what stops.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        zero = ctypes.c_ulong(0)
        if libc.prctl(ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL), zero, zero, zero) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os._exit(1)


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel a pool's queued tasks and terminate its workers now (``shutdown`` alone waits for running tasks)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public handle on the workers
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises KeyboardInterrupt, so ``finally`` blocks and
    ``except BaseException`` clean-ups run as on Ctrl-C; the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
