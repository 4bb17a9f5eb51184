"""`winnow report`: the run's report in <output_dir>/report/ (report.md, index.html, plots).

`run` writes the whole-run report (pipelines/run_report.py); the ablation comparison
(`write_ablation_report`, also written alone to report/ablations/) is its Ablations section.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines.config import ConfigError, RunConfig


def write_ablation_report(cfg: RunConfig, out_dir: Path | None = None) -> Path:
    """Compare the config's ablations (what `winnow ablate` wrote) in out_dir (default <output_dir>/report/)."""
    from proxy.report import write_report

    out_dir = out_dir or cfg.stage_dir("report")
    names = [a.name for a in cfg.ablate.ablations]
    config_yaml = yaml.safe_dump({"ablate": cfg.ablate.model_dump()}, sort_keys=False)
    try:
        write_report(cfg.stage_dir("ablations"), names, cfg.ablate.tasks, config_yaml, out_dir)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    return out_dir


def run(cfg: RunConfig, args=None) -> int:
    # the whole-run report (pipelines/run_report.py); the ablation comparison is its Ablations section,
    # also written alone to report/ablations/
    from pipelines.run_report import run as write_whole_run_report

    return write_whole_run_report(cfg, args)
