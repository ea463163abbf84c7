"""What each Slurm job asks for (`--partition`, `--gpus-per-task`, `--time`, ...), checked before
anything is written.

Apart from `slurm.py` (submitting) and `slurm_scripts.py` (writing the job scripts) because both
read these options, and a bad flag must be refused before either runs: one line naming the flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from benchmark.errors import UsageError

# Slurm's --time forms: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
_TIME = re.compile(r"^(?:(\d+)-(\d+)(?::(\d+))?(?::(\d+))?|(\d+)(?::(\d+))?(?::(\d+))?)$")


_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)


@dataclass
class SlurmOptions:
    """What each array task asks Slurm for; None leaves the cluster's default.

    Args:
        partition: `--partition`.
        gpus_per_task: `--gpus-per-task` (array tasks only; the merge job needs no GPU).
        cpus_per_task: `--cpus-per-task`.
        mem: `--mem`, e.g. "16G".
        time: `--time` in a Slurm form (HH:MM:SS, D-HH:MM:SS, MM, ...).
        max_parallel: at most this many tasks at once (`--array=...%K`).
        account: `--account` (both jobs).
        sbatch_args: further sbatch options, one per item (`--qos=high`), added to both jobs.
    """

    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    time: str | None = None
    max_parallel: int | None = None
    account: str | None = None
    sbatch_args: list[str] = field(default_factory=list)

    def validate(self) -> None:
        for key in ("gpus_per_task", "cpus_per_task", "max_parallel"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(
                    f"--{key.replace('_', '-')} must be a whole number >= 1, got {value!r}"
                )
        if self.time is not None:
            time_limit_seconds(self.time)
        if self.mem is not None and not _MEM.match(str(self.mem)):
            raise UsageError(
                f"--mem {self.mem!r} is not a Slurm memory size; give e.g. 16G or 16000M"
            )
        for key in ("partition", "account"):
            value = getattr(self, key)
            if value is not None and not re.fullmatch(r"[\w.,+-]+", value):
                raise UsageError(f"--{key} {value!r} is not a valid Slurm {key} name")
        for arg in self.sbatch_args:
            if not arg.startswith("-") or "\n" in arg:
                raise UsageError(
                    f"--sbatch-arg {arg!r} must be one sbatch option on one line, "
                    "e.g. --sbatch-arg=--qos=high"
                )


def time_limit_seconds(text: str) -> int:
    """Seconds in a Slurm `--time` value; a bad one is a UsageError naming it."""
    match = _TIME.match(text.strip())
    if not match:
        raise UsageError(
            f"--time {text!r} is not a Slurm time; give HH:MM:SS, D-HH:MM:SS or minutes"
        )
    days, d_hours, d_minutes, d_seconds, minutes, m_seconds, h_seconds = match.groups()
    if days is not None:
        seconds = (
            int(days) * 86400 + int(d_hours) * 3600 + int(d_minutes or 0) * 60 + int(d_seconds or 0)
        )
    elif h_seconds is not None:  # HH:MM:SS
        seconds = int(minutes) * 3600 + int(m_seconds) * 60 + int(h_seconds)
    else:  # MM or MM:SS
        seconds = int(minutes) * 60 + int(m_seconds or 0)
    if seconds <= 0:
        raise UsageError(f"--time {text!r} must be longer than zero")
    return seconds
