"""What the benchmark scripts (benchmarks/, scripts/fidelity_base.py) share: where a checkout's data lives, and
CPU time as a benchmark counts it.

Benchmarks report ratios against a reference run side by side in one script, on CPU time (user + sys), which
stays meaningful on a machine other jobs share; wall time is printed beside it.
"""

from __future__ import annotations

import resource
from pathlib import Path

ROOT = Path.cwd()  # the scripts are run from the project root (make bench-*)
SHARED_DATA = ROOT / ".." / "shared" / "data"
RUNS = ROOT / "runs"


def cpu_seconds(children: bool = False) -> float:
    """User + system CPU seconds of this process (and, with `children`, of its finished child processes)."""
    who = [resource.RUSAGE_SELF] + ([resource.RUSAGE_CHILDREN] if children else [])
    usages = [resource.getrusage(w) for w in who]
    return sum(u.ru_utime + u.ru_stime for u in usages)
