"""An isolated cell's child process dies with its parent: a parent killed with SIGKILL (a preempted
node) runs no clean-up, and a child left alive would go on training and writing into the run
folder beside the re-run that resumes the cell."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def spawned_children(pid: int) -> list[int]:
    """The children of `pid` that multiprocessing spawned (not its resource tracker)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_the_child_of_a_parent_killed_with_sigkill_exits(tmp_path):
    marker = tmp_path / "child_started"
    parent_code = textwrap.dedent(
        f"""
        import os
        from benchmark.run.isolation import run_in_child
        # the child's task: say it runs, then work (sleep) far longer than the test waits
        run_in_child(os.system, "touch {marker} && exec sleep 30")
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=ROOT)
    child = None
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the child never started"
        (child,) = spawned_children(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child), "the isolated child outlived its killed parent"
    finally:
        parent.kill()
        if child is not None and alive(child):  # the one process this test started and left
            os.kill(child, signal.SIGKILL)
