"""A real single-node Slurm cluster for the session (scripts/slurm_local.sh), stopped at the end.

Skipped with the reason where it cannot start: not root, or no Slurm binaries and no apt-get to
install them. CI runs as root with apt, so it runs these tests.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = PROJECT_ROOT / "scripts" / "slurm_local.sh"
CANNOT_RUN_HERE = 3  # slurm_local.sh's exit status for "needs root / no Slurm and no apt-get"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _skip_reason() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "the local Slurm cluster needs root (slurmd starts jobs as their user)"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "no Slurm binaries and no apt-get to install them"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """Starts the cluster under a fresh folder in /tmp (munge must reach it) and yields its
    slurm.conf."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="slurm-test-"))
    env = {
        **os.environ,
        "SLURM_LOCAL_CTLD_PORT": str(_free_port()),
        "SLURM_LOCAL_D_PORT": str(_free_port()),
    }
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        if started.returncode == CANNOT_RUN_HERE:
            pytest.skip(f"local Slurm cannot run here: {started.stderr.strip()}")
        assert started.returncode == 0, f"slurm_local.sh start failed:\n{started.stderr}"
        conf = folder / "etc" / "slurm.conf"
        assert f"export SLURM_CONF={conf}" in started.stdout
        previous = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(
            conf
        )  # sbatch, squeue and the jobs (which inherit it) use this cluster
        try:
            yield conf
        finally:
            if previous is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = previous
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
