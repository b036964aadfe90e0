"""Who used the CPU while a side was measured: the run itself, or other processes.

On a 2-core machine another process (a profiler, a build) takes cores from whichever side is
being measured, and the ratio of that round moves. This cannot be prevented from here, but it can
be seen: for each side, the machine's busy CPU time (`/proc/stat`) less the CPU time of the run's
own processes (its servers, wrk, this runner, and PostgreSQL, which our servers and the peers keep
busy) is what others used. The report gives it in cores, per side and for the run.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

__all__ = ["foreign_cores", "process_seconds"]

T = TypeVar("T")
_TICK_SECONDS = 1 / os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads (0 once it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) * _TICK_SECONDS


def _machine_busy_seconds() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    guest = sum(values[8:10])  # already counted in user and nice
    return (sum(values) - idle - guest) * _TICK_SECONDS


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _own_seconds(server_pids: Iterable[int]) -> float:
    here = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once waited for
    return (
        here.ru_utime
        + here.ru_stime
        + children.ru_utime
        + children.ru_stime
        + sum(process_seconds(pid) for pid in [*server_pids, *_postgres_pids()])
    )


def foreign_cores(work: Callable[[], T], server_pids: Iterable[int]) -> tuple[T, float]:
    """Run `work`; return its result and the cores other processes used meanwhile (on average;
    a PostgreSQL backend that exits meanwhile counts as another process)."""
    pids = list(server_pids)
    start, busy, own = time.monotonic(), _machine_busy_seconds(), _own_seconds(pids)
    result = work()
    elapsed = time.monotonic() - start
    others = (_machine_busy_seconds() - busy) - (_own_seconds(pids) - own)
    return result, max(others, 0.0) / elapsed if elapsed > 0 else 0.0
