"""The base stage end to end on real shards, with datatrove's real local executor."""

import glob
import json

import pyarrow.parquet as pq
import pytest

from winnow.blocks.writers.parquet import FINEWEB_COLUMNS
from winnow.pipelines.config import load_config
from winnow.pipelines.stages import base
from winnow.pipelines.summary import check_invariant, total


def write_config(tmp_path, shared_data, extra: str = "") -> str:
    shard = (shared_data / "warc" / "pages" / "pages-00001.warc.gz").read_bytes()
    (tmp_path / "truncated.warc.gz").write_bytes(shard[: len(shard) // 40])  # a shard cut off mid-record
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"""
name: test
output_dir: {tmp_path / "run"}
dump: CC-MAIN-2024-10
input:
  paths: [{shared_data}/warc/pages/pages-00000.warc.gz, {shared_data}/warc/edge/*, {shared_data}/warc/cc/*,
          {tmp_path}/truncated.warc.gz]
  format: warc
executor: {{kind: local, tasks: 2, workers: 2}}
extract: {{extractor: trafilatura}}
{extra}
""")
    return str(cfg)


@pytest.mark.slow
def test_base_stage_writes_fineweb_parquet_removed_summary_and_funnel(tmp_path, shared_data):
    cfg = load_config(write_config(tmp_path, shared_data))
    base.run(cfg)
    stage = tmp_path / "run" / "base"
    summary = json.loads((stage / "summary.json").read_text())
    check_invariant(summary)
    assert summary["read"] == summary["kept"] + total(summary["removed"]) + total(summary["failed"])
    assert summary["failed"] == {"reader_truncated_gzip": 1}  # the cut-off record; the ones before it were read
    # non-document records are counted, not read: requests, metadata, the WAT record, revisits, ARC header
    assert {"request", "metadata", "warcinfo", "revisit", "wat_metadata", "arc_filedesc"} <= set(summary["skipped"])
    assert summary["removed"]["language_prescreen"]["other_language"] > 0  # German pages never reach trafilatura
    assert sum(summary["removed"]["language"].values()) > 0
    assert (stage / "funnel.png").stat().st_size > 10_000

    kept = [pq.read_table(f) for f in sorted(glob.glob(str(stage / "*.parquet")))]
    assert kept and all(t.schema.names == FINEWEB_COLUMNS for t in kept)
    assert len({t.schema for t in kept}) == 1  # identical schema in every file
    rows = [r for t in kept for r in t.to_pylist()]
    assert len(rows) == summary["kept"]
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["language"] == "en" and r["language_score"] > 0.65
        assert r["dump"] == "CC-MAIN-2024-10" and r["url"].startswith("http") and r["token_count"] > 0

    for name, reasons in summary["removed"].items():
        removed = [
            r for f in glob.glob(str(stage / "removed" / name / "*.parquet")) for r in pq.read_table(f).to_pylist()
        ]
        assert len(removed) == sum(reasons.values()), name
        assert {r["filter_reason"] for r in removed} == set(reasons), name
