"""The whole-run report on a small real run folder: base (then dedup) run for real on one shard's first pages."""

import base64
import json
import re

import pyarrow.parquet as pq
import pytest

from winnow.pipelines import registry
from winnow.pipelines.config import load_config
from winnow.pipelines.report.run import write_run_report
from winnow.pipelines.stages import base, dedup
from winnow.pipelines.stages.report import run as report_command


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("report")
    config = folder / "run.yaml"
    config.write_text(f"""
name: small
output_dir: {folder / "run"}
input: {{paths: {shared_data}/warc/pages/pages-00000.warc.gz, limit: 60}}
executor: {{kind: local, tasks: 1, workers: 1}}
extract: {{extractor: resiliparse}}
dedup: {{tasks: 1}}
ablate:
  ablations: [{{name: edu, data: {folder / "run" / "subsets" / "edu-3"}}}]
""")
    cfg = load_config(config)
    base.run(cfg)
    return cfg


def inlined_images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)]


@pytest.mark.slow
def test_report_of_a_base_only_run_says_what_has_not_run(small_run):
    out = write_run_report(small_run)
    md, page = (out / "report.md").read_text(), (out / "index.html").read_text()
    summary = json.loads((small_run.stage_dir("base") / "summary.json").read_text())

    for heading in (
        "## Funnel",
        "## Deduplication",
        "## Annotation and classifier",
        "## Ablations",
        "## The run",
        "### Configuration",
        "### Versions",
    ):
        assert heading in md, heading
    # the funnel table: one row per base step with the summary's counts, tokens from the Parquet files
    for step in summary["funnel"]:
        assert re.search(rf"^\| {step['step']} \| {step['documents']:,} \|", md, re.M), step
    kept_tokens = sum(
        sum(pq.read_table(p, columns=["token_count"]).column("token_count").to_pylist())
        for p in small_run.stage_dir("base").glob("*.parquet")
    )
    assert f"| base kept | {summary['kept']:,} |  | {kept_tokens:,} |" in md
    # removed examples: every filter that removed something is listed, with one of its real reasons
    for name, reasons in summary["removed"].items():
        assert f"{name}: {sum(reasons.values()):,} removed" in md
        assert any(f"| {reason}" in md for reason in reasons), name
    # stages that did not run say so, with the command that runs them
    for stage in registry.STAGES.values():
        if stage.name in ("base", "report"):
            continue  # base ran; the report is being written
        assert f"(`make {stage.name}`)" in md, stage.name
        if stage.name != "ablate":  # its section names the ablations it looked for
            assert f"No `{small_run.stage_dir(stage.name) / stage.done_file}`" in md, stage.name
        assert f"| {stage.name} | not run (`make {stage.name}`) |" in md, stage.name
    assert f"| base | finished | {summary['read']:,} | {summary['kept']:,} |" in md
    # one per stage that did not run (all but base and the report), and timings.json
    assert md.count("**Not run.**") == len([s for s in registry.STAGES if s not in ("base", "report")]) + 1
    assert not (out / "ablations").exists()

    # self-contained: every image is inlined PNG data, nothing is fetched from elsewhere
    images = inlined_images(page)
    assert len(images) == md.count("![") == 1 and all(i.startswith(b"\x89PNG") for i in images)
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    # removed pages are raw HTML: they must show as text, never as markup of the report
    assert "<!doctype" not in page.lower().replace("<!doctype html>", "", 1)
    assert page.count("<script") == 0


@pytest.mark.slow
def test_report_after_dedup_and_through_the_report_command(small_run):
    dedup.run(small_run)
    assert report_command(small_run) == 0
    out = small_run.stage_dir("report")
    md, page = (out / "report.md").read_text(), (out / "index.html").read_text()
    summary = json.loads((small_run.stage_dir("dedup") / "summary.json").read_text())
    assert f"{summary['read']:,} documents in, {summary['kept']:,} kept" in md
    assert f"**{summary['clusters']:,} clusters**" in md
    assert re.search(rf"^\| dedup kept \| {summary['kept']:,} \|", md, re.M)
    assert "No `" + str(small_run.stage_dir("dedup")) not in md
    images = inlined_images(page)
    assert len(images) == 2 and (out / "cluster_sizes.png").read_bytes() in images  # funnel + cluster sizes
    # the config shown is the run's, every default filled in
    assert "extractor: resiliparse" in md and "favour_precision: true" in md
    assert "| datatrove | 0.10.1 |" in md


@pytest.mark.slow
def test_an_unreadable_stage_output_costs_only_its_section(small_run, tmp_path):
    import shutil

    cfg = small_run.model_copy(update={"output_dir": str(tmp_path / "run")})
    shutil.copytree(small_run.stage_dir("base"), cfg.stage_dir("base"))
    cfg.stage_dir("dedup").mkdir()
    (cfg.stage_dir("dedup") / "summary.json").write_text('{"read": 285, "kept"')  # cut off mid-write
    md = (write_run_report(cfg) / "report.md").read_text()
    assert "## Deduplication\n\n> **Could not be written:** JSONDecodeError" in md
    assert "| base kept |" in md and "### Versions" in md  # the other sections are all there


@pytest.mark.slow
def test_a_stage_that_ran_on_an_earlier_input_is_flagged(small_run, tmp_path):
    """Base re-run after dedup (as when a filter changes): dedup's summary no longer reads what base keeps.
    The dedup summary here is written by hand from the real base one, one document short."""
    import shutil

    cfg = small_run.model_copy(update={"output_dir": str(tmp_path / "run")})
    shutil.copytree(small_run.stage_dir("base"), cfg.stage_dir("base"))
    kept = json.loads((cfg.stage_dir("base") / "summary.json").read_text())["kept"]
    cfg.stage_dir("dedup").mkdir()
    (cfg.stage_dir("dedup") / "summary.json").write_text(
        json.dumps(
            {"read": kept - 1, "kept": kept - 1, "removed": {}, "failed": {}, "skipped": {}, "cluster_sizes": {}}
        )
    )
    md = (write_run_report(cfg) / "report.md").read_text()
    assert f"> **Out of date:** dedup read {kept - 1:,} documents but base now keeps {kept:,}" in md
    assert md.count("Out of date") == 1
