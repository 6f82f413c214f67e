"""Worker processes never outlive ``easyocc labels --workers 2``: not when the parent is SIGKILLed (the kernel kills
them, even stopped), and a SIGTERM or a Ctrl-C stops the whole command cleanly (exit 130, no half-written files).
Real processes: the command runs as a subprocess, its workers are found in /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux's")]

SRC = Path(__file__).resolve().parents[1] / "src"


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def workers_of(parent: int) -> list[int]:
    """The multiprocessing workers (not the resource tracker) whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _interruptible() -> None:
    """In the child before exec: Ctrl-C's default action, as a terminal gives it. A test run started in the background
    of a shell (``pytest &``, some CI runners) inherits SIGINT ignored, and Python then keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def labels_command(dataroot: Path, out: Path, **popen):
    """``easyocc labels`` with two workers, a scene each, as a subprocess; settings slow enough (every point kept,
    k-NN outlier removal, no future frames) that both are mid-scene for seconds. Yields (process, workers found so far): whatever
    the test leaves alive is killed afterwards."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "easyocc", "labels", "--data", str(dataroot), "--version", "v1.0-mini", "--out", str(out),
         "--split", "all",
         "--workers", "2", "--cell-divisions", "0", "--outlier-neighbors", "64",
         "--future-frames", "0"],  # each keyframe lifts its own frame: slow after the first keyframe too
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_interruptible, **popen)
    workers: list[int] = []
    try:
        yield process, workers
    finally:
        process.kill()
        process.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        process.stderr.close()


def both_workers_busy(process: subprocess.Popen, out: Path, workers: list[int]) -> list[int]:
    """Wait until each scene has a written keyframe (so both workers are past their start-up); their pids are
    put in ``workers``."""
    def ready():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        scenes = {p.parts[-3] for p in out.glob("*/*/labels.npz")}
        workers = workers_of(process.pid)
        return workers if len(scenes) == 2 and len(workers) == 2 else None
    workers.extend(wait_for(ready, 120, "both workers to write a keyframe"))
    return workers


def test_workers_die_with_a_killed_parent(tiny_simscenes, tmp_path):
    out = tmp_path / "labels"
    with labels_command(tiny_simscenes, out) as (process, workers):
        both_workers_busy(process, out, workers)
        for pid in workers:  # stopped, a worker cannot notice anything itself: only the kernel can end it
            os.kill(pid, signal.SIGSTOP)
        process.kill()
        process.wait(timeout=30)
        wait_for(lambda: not any(alive(pid) for pid in workers), 10, "the orphaned workers to die")


@pytest.mark.parametrize("how", ["SIGTERM to the command", "Ctrl-C to the process group"])
def test_sigterm_and_ctrl_c_stop_everything_cleanly(how, tiny_simscenes, tmp_path):
    out = tmp_path / "labels"
    with labels_command(tiny_simscenes, out, start_new_session=True) as (process, workers):
        both_workers_busy(process, out, workers)
        if how.startswith("SIGTERM"):
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: every process of the group
        assert process.wait(timeout=30) == 130
        err = process.stderr.read().decode()
        assert "easyocc labels: interrupted" in err and "Traceback" not in err, err[-2000:]
        assert not any(alive(pid) for pid in workers)
        assert not [p for p in out.rglob("*.tmp")]  # the stopped workers' half-written files are gone
        assert len(list(out.glob("*/*/labels.npz"))) < 8  # it was stopped mid-way
