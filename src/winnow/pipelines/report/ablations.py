"""The ablation comparison (winnow.proxy.report) of the config's ablations: the whole-run report's Ablations
section, also written alone to <output_dir>/report/ablations/ (report.md, index.html, loss_curves.png and
decisions.json: every pair of ablations decided per metric with winnow.proxy.compare's paired bootstrap)."""

from __future__ import annotations

from pathlib import Path

import yaml

from winnow.errors import ConfigError
from winnow.pipelines.config import RunConfig
from winnow.proxy.report import write_report


def write_ablation_report(cfg: RunConfig, out_dir: Path | None = None) -> Path:
    """Compare the config's ablations (what `winnow ablate` wrote) in out_dir (default <output_dir>/report/)."""
    out_dir = out_dir or cfg.stage_dir("report")
    names = [a.name for a in cfg.ablate.ablations]
    config_yaml = yaml.safe_dump({"ablate": cfg.ablate.model_dump()}, sort_keys=False)
    try:
        write_report(cfg.stage_dir("ablate"), names, cfg.ablate.tasks, config_yaml, out_dir)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    return out_dir
