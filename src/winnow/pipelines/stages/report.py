"""`winnow report`: the whole-run report in <output_dir>/report/ (report.md, index.html, the plots it shows).

The report is written by winnow.pipelines.report.run; this stage module only runs it.
"""

from __future__ import annotations

import sys

from winnow.pipelines.config import RunConfig
from winnow.pipelines.report.run import write_run_report


def run(cfg: RunConfig, args=None) -> int:
    out_dir = write_run_report(cfg)
    print(f"winnow report: {(out_dir / 'index.html').resolve()} (and report.md)", file=sys.stderr)
    return 0
