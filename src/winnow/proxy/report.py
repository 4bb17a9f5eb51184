"""Compare ablations: tokens, loss curves, validation losses, benchmark tables, decisions with confidence intervals.

Reads what `winnow ablate` wrote under `<output_dir>/ablate/` (each `<name>/summary.json`, and per seed
`metrics.jsonl`, `final.json` and the per-item `samples_<task>.jsonl`) and writes `report.md`, a self-contained
`index.html` (the plot is embedded), `loss_curves.png` and `decisions.json` (winnow.proxy.compare's full result).

Two kinds of noise statement:
- the noise band of an ablation's metric is half the spread between its seeds (with 2 seeds: |a - b| / 2), shown
  beside every mean;
- the decisions: every pair of ablations compared on the same items with winnow.proxy.compare's paired bootstrap
  (items, and the seed variance where there are several seeds), per metric (acc, acc_norm, prob_correct,
  logprob_correct_norm), per task and on the task average: "A > B (95 % CI [..])", "B > A" or "undecided — about
  N more items would decide". The headline ranking uses the metric with the best signal-to-noise and says which.
Validation loss is shown twice when the run has it: on the shared validation set (the same tokens for every
ablation, `val_loss_shared`, comparable across data sets) and on each ablation's own held-out tail.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from winnow.figures import figure
from winnow.proxy import compare
from winnow.proxy.evaluate import average_acc_norm


def collect(ablations_dir: Path, names: list[str]) -> dict:
    """{name: {tokens, documents, data, seeds: {seed: {final_val_loss, eval, metrics}}}} for ablations that ran."""
    found = {}
    for name in names:
        folder = ablations_dir / name
        summary_path = folder / "summary.json"
        if not summary_path.exists():
            continue
        summary = json.loads(summary_path.read_text())
        seeds = {}
        for seed, run in summary["runs"].items():
            metrics_path = folder / f"seed-{seed}" / "metrics.jsonl"
            metrics = (
                [json.loads(line) for line in metrics_path.read_text().splitlines()] if metrics_path.exists() else []
            )
            final_path = folder / f"seed-{seed}" / "final.json"
            if run.get("val_loss_shared") is None and final_path.exists():
                run = {**run, "val_loss_shared": json.loads(final_path.read_text()).get("val_loss_shared")}
            seeds[seed] = {**run, "metrics": metrics}
        found[name] = {
            "tokens": summary["tokens"],
            "documents": summary["documents"],
            "data": summary["data"],
            "seeds": seeds,
        }
    return found


def mean_and_band(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, (max(values) - min(values)) / 2


def benchmark_rows(ablations: dict, tasks: list[str]) -> list[dict]:
    """Per ablation: mean acc_norm per task, average, and their noise bands (over seeds), best average first."""
    rows = []
    for name, a in ablations.items():
        per_task = {}
        for task in tasks:
            values = [
                s["eval"][task]["acc_norm"]
                for s in a["seeds"].values()
                if task in s["eval"] and s["eval"][task].get("acc_norm") is not None
            ]
            if values:
                per_task[task] = mean_and_band(values)
        averages = [average_acc_norm({t: s["eval"][t] for t in tasks if t in s["eval"]}) for s in a["seeds"].values()]
        averages = [v for v in averages if v is not None]
        losses = [s["final_val_loss"] for s in a["seeds"].values() if s["final_val_loss"] is not None]
        shared = [s["val_loss_shared"] for s in a["seeds"].values() if s.get("val_loss_shared") is not None]
        ppl = [s["eval"]["wikitext"]["word_perplexity"] for s in a["seeds"].values() if "wikitext" in s["eval"]]
        rows.append(
            {
                "name": name,
                "tasks": per_task,
                "average": mean_and_band(averages) if averages else None,
                "val_loss": mean_and_band(losses) if losses else None,
                "val_loss_shared": mean_and_band(shared) if shared else None,
                "wikitext_word_ppl": mean_and_band(ppl) if ppl else None,
            }
        )
    rows.sort(key=lambda r: -(r["average"][0] if r["average"] else -1))
    return rows


def ranking_lines(rows: list[dict]) -> list[str]:
    """The ranking by average acc_norm, saying for each neighbour pair whether the gap exceeds the noise."""
    lines = []
    for i, row in enumerate(rows):
        mean, band = row["average"] or (float("nan"), float("nan"))
        line = f"{i + 1}. **{row['name']}**: {100 * mean:.2f} ± {100 * band:.2f}"
        if i + 1 < len(rows) and rows[i + 1]["average"] and row["average"]:
            next_mean, next_band = rows[i + 1]["average"]
            gap = mean - next_mean
            verdict = "larger than the seed noise" if gap > band + next_band else "within the seed noise"
            line += f" — {100 * gap:.2f} points above #{i + 2}, {verdict} (±{100 * (band + next_band):.2f})"
        lines.append(line)
    return lines


def plot_loss_curves(ablations: dict, path: Path) -> None:
    with figure(path, figsize=(8, 4.5), dpi=110) as (_, ax):
        from matplotlib import rcParams

        colours = rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (name, a) in enumerate(ablations.items()):
            colour = colours[i % len(colours)]
            for j, (seed, run) in enumerate(sorted(a["seeds"].items())):
                m = run["metrics"]
                if not m:
                    continue
                style = "-" if j == 0 else "--"
                ax.plot(
                    [r["tokens"] for r in m],
                    [r["loss"] for r in m],
                    style,
                    color=colour,
                    alpha=0.5,
                    linewidth=1,
                    label=f"{name} seed {seed} (train)",
                )
                val = [(r["tokens"], r["val_loss"]) for r in m if "val_loss" in r]
                if val:
                    ax.plot(
                        *zip(*val, strict=True),
                        style,
                        marker="o",
                        color=colour,
                        linewidth=2,
                        label=f"{name} seed {seed} (val)",
                    )
        ax.set_xlabel("training tokens")
        ax.set_ylabel("loss (nats/token)")
        ax.set_title("Proxy-model loss per ablation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)


def _loss(value) -> str:
    return f"{value:.4f}" if value is not None else "–"


def _pct(value_band) -> str:
    if value_band is None:
        return "–"
    mean, band = value_band
    return f"{100 * mean:.1f} ± {100 * band:.1f}"


METRIC_WORDS = {
    "acc": "accuracy (%)",
    "acc_norm": "acc_norm (%)",
    "prob_correct": "probability of the correct answer (%)",
    "logprob_correct_norm": "log-likelihood of the correct answer per character (nats)",
}


def continuous_lines(comparison: dict, tasks: list[str]) -> list[str]:
    """Per ablation and metric: the mean over seeds and the items in the per-item samples, per task and on average."""
    scores = comparison["scores"]
    shown = [t for t in tasks if any(t in per for s in scores.values() for per in s.values())]
    out = [
        "## Benchmarks, all metrics (mean over seeds, from the per-item samples)",
        "",
        "acc_norm next to the continuous metrics: at small scale accuracies sit near chance while the probability",
        "and the normalised log-likelihood of the correct answer already move (DataDecide, Magnusson et al. 2025).",
        "",
        "| ablation | metric | " + " | ".join(shown) + " | average |",
        "|---|---|" + "---:|" * (len(shown) + 1),
    ]
    for name, per_metric in scores.items():
        for metric, per_task in per_metric.items():
            cells = [compare.fmt_value(metric, per_task[t]) if t in per_task else "–" for t in shown]
            out.append(
                f"| {name} | {metric} | " + " | ".join(cells) + f" | {compare.fmt_value(metric, per_task['average'])} |"
            )
    return out + [""]


def _cell(r: dict, a: str, b: str, metric: str) -> str:
    f = lambda v: compare.fmt_value(metric, v)  # noqa: E731
    if r["winner"] == "a":
        return f"**{a}** [{f(r['lo'])}, {f(r['hi'])}]"
    if r["winner"] == "b":
        return f"**{b}** [{f(-r['hi'])}, {f(-r['lo'])}]"
    more = f"; ~{r['more_items']:,} more items" if r["more_items"] is not None else "; seed noise"
    if not r["effect"]:
        return "undecided (no difference)"
    return f"undecided {f(r['effect'])} [{f(r['lo'])}, {f(r['hi'])}]{more}"


def decision_lines(comparison: dict) -> list[str]:
    """The headline metric and ranking, then per pair: the average's sentence per metric and a task × metric table."""
    level = round(100 * comparison["level"])
    out = [f"## Decisions (paired bootstrap over the same items, {level} % intervals)", ""]
    head = comparison["headline"]
    if head is None:
        return out + ["No per-item samples: no decision (re-run `winnow ablate` to write them).", ""]
    seeds = ", ".join(f"{name} {n}" for name, n in comparison["seeds"].items())
    out += [
        f"**Headline metric: {head['metric']}** — {head['why']}. Ranking by its task average:",
        "",
    ]
    out += [
        f"{i + 1}. **{name}**: {compare.fmt_value(head['metric'], value)}"
        for i, (name, value) in enumerate(head["ranking"])
    ]
    if head["metric"] == "logprob_correct_norm":
        out += [
            "",
            "(logprob_correct_norm is not normalised over the choices: a model that finds all answer texts of a",
            "domain likelier raises it without preferring the right one — check that prob_correct agrees; in",
            "`make ablate-check` it did not.)",
        ]
    out += [
        "",
        f"Each pair is compared on the items both evaluated (matched by task and item id), {comparison['n_boot']:,}"
        f" bootstrap resamples (RNG seed {comparison['seed']}): items resampled within each task, the seed variance",
        f"added where there are several seeds (seeds per ablation: {seeds}). A cell names the better ablation and",
        "the interval of its advantage, or says undecided with the difference (first − second) and how many more",
        "items would decide at this effect size (an items-only estimate: one budget has no token axis; `make",
        "ablate-check` extrapolates over budgets). Accuracies and probabilities in points, log-likelihoods in nats.",
        "",
    ]
    for pair in comparison["pairs"]:
        a, b, metrics = pair["a"], pair["b"], pair["metrics"]
        if not metrics:
            continue
        out += [f"### {a} vs {b}", ""]
        for metric, per in metrics.items():
            mark = " (headline)" if metric == head["metric"] else ""
            out.append(
                f"- **{metric}**{mark}, task average: {compare.fmt_result(per['average'], a, b, metric)}; "
                f"SNR {per['average']['snr']:.2f}"
            )
        tasks = list(dict.fromkeys(t for per in metrics.values() for t in per if t != "average"))
        out += [
            "",
            "| task | " + " | ".join(metrics) + " |",
            "|---|" + "---|" * len(metrics),
        ]
        for task in [*tasks, "average"]:
            cells = [_cell(per[task], a, b, m) if task in per else "–" for m, per in metrics.items()]
            name = "**average**" if task == "average" else task
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def markdown(
    ablations: dict, tasks: list[str], config_yaml: str, plot_name: str, comparison: dict | None = None
) -> str:
    mc_tasks = [t for t in tasks if t != "wikitext"]
    rows = benchmark_rows(ablations, mc_tasks)
    out = ["# Ablation report", ""]
    out += ["## Data", "", "| ablation | source | documents | tokens |", "|---|---|---:|---:|"]
    for name, a in ablations.items():
        out.append(f"| {name} | `{a['data']}` | {a['documents']:,} | {a['tokens']:,} |")
    out += [
        "",
        "## Loss",
        "",
        f"![loss curves]({plot_name})",
        "",
    ]
    has_shared = any(row["val_loss_shared"] for row in rows)
    if has_shared:
        out += [
            "Two validation losses: on the **shared validation set** (the same held-out tokens for every ablation,",
            "so it compares data sets) and on each ablation's **own held-out tail** (the last 5 % of its stream:",
            "it compares seeds and training progress, not data sets). WikiText-2 perplexity is shared text too.",
            "",
            "| ablation | shared validation loss (mean ± half-spread over seeds) | own-tail validation loss | per seed "
            "(shared / own) | WikiText-2 word perplexity |",
            "|---|---:|---:|---|---:|",
        ]
    else:
        out += [
            "Validation loss is measured on each ablation's own held-out tokens (the last 5 % of its stream), so it",
            "compares seeds and training progress, not datasets; WikiText-2 perplexity is the shared held-out text.",
            "",
            "| ablation | final validation loss (mean ± half-spread over seeds) | per seed "
            "| WikiText-2 word perplexity |",
            "|---|---:|---|---:|",
        ]
    for row in rows:
        a = ablations[row["name"]]
        loss = f"{row['val_loss'][0]:.4f} ± {row['val_loss'][1]:.4f}" if row["val_loss"] else "–"
        ppl = f"{row['wikitext_word_ppl'][0]:,.0f}" if row["wikitext_word_ppl"] else "–"
        if has_shared:
            shared = row["val_loss_shared"]
            shared_text = f"{shared[0]:.4f} ± {shared[1]:.4f}" if shared else "–"
            per_seed = ", ".join(
                f"{s}: {_loss(r.get('val_loss_shared'))} / {_loss(r['final_val_loss'])}"
                for s, r in sorted(a["seeds"].items())
            )
            out.append(f"| {row['name']} | {shared_text} | {loss} | {per_seed} | {ppl} |")
        else:
            per_seed = ", ".join(f"{s}: {_loss(r['final_val_loss'])}" for s, r in sorted(a["seeds"].items()))
            out.append(f"| {row['name']} | {loss} | {per_seed} | {ppl} |")
    out += [
        "",
        "## Benchmarks (acc_norm %, zero-shot; LAMBADA: greedy accuracy)",
        "",
        "| ablation | " + " | ".join(mc_tasks) + " | average |",
        "|---|" + "---:|" * (len(mc_tasks) + 1),
    ]
    for row in rows:
        cells = [_pct(row["tasks"].get(t)) for t in mc_tasks]
        out.append(f"| {row['name']} | " + " | ".join(cells) + f" | **{_pct(row['average'])}** |")
    n_items = {
        t: next((s["eval"][t]["n"] for a in ablations.values() for s in a["seeds"].values() if t in s["eval"]), 0)
        for t in mc_tasks
    }
    out += [
        "",
        "Items per task: " + ", ".join(f"{t} {n}" for t, n in n_items.items()) + ".",
        "",
        "## Ranking (average acc_norm; ± = half the spread between seeds)",
        "",
    ]
    out += ranking_lines(rows)
    errors = [
        s["eval"][t]["stderr"]
        for a in ablations.values()
        for s in a["seeds"].values()
        for t in mc_tasks
        if t in s["eval"] and s["eval"][t].get("stderr") is not None
    ]
    if errors and mc_tasks:
        # standard error of an average over k tasks: sqrt(mean of the per-task variances / k)
        se_average = (sum(e * e for e in errors) / len(errors) / len(mc_tasks)) ** 0.5
        out += [
            "",
            "Besides the seeds, the benchmark sample itself is noisy: with these item counts the average has a",
            f"binomial standard error of about ±{100 * se_average:.1f} points (the same items are used for every",
            "ablation, so this error is shared; it bounds how far the numbers generalise to the full benchmarks).",
        ]
    out += [
        "",
        "With a small proxy and a short budget most benchmarks sit near chance: trust a ranking only when the",
        "gap is larger than both the seed noise and the benchmark's standard error — the decisions below say",
        "when it is.",
        "",
    ]
    if comparison is not None:
        out += continuous_lines(comparison, mc_tasks)
        out += decision_lines(comparison)
    out += [
        "## Configuration",
        "",
        "```yaml",
        config_yaml.rstrip(),
        "```",
        "",
    ]
    return "\n".join(out)


def html_page(markdown_text: str, png_path: Path) -> str:
    """A self-contained page: the markdown's tables rendered as HTML, the plot inlined as base64."""
    image = base64.b64encode(png_path.read_bytes()).decode("ascii")
    body, in_table, in_code = [], False, False
    for line in markdown_text.splitlines():
        if line.startswith("```"):
            body.append("<pre>" if not in_code else "</pre>")
            in_code = not in_code
            continue
        if in_code:
            body.append(html.escape(line))
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-:") for c in cells):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("!["):
            body.append(f'<img alt="loss curves" src="data:image/png;base64,{image}">')
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    if in_table:
        body.append("</table>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:1em}"
        "img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Ablation report</title><style>{style}"
        f"</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _inline(text: str) -> str:
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def decide(ablations_dir: Path, ablations: dict, tasks: list[str]) -> dict | None:
    """winnow.proxy.compare on the per-item samples of every seed (None when no ablation wrote any)."""
    data = {name: compare.load_ablation(ablations_dir / name, list(a["seeds"]), tasks) for name, a in ablations.items()}
    if not any(d["tasks"] for d in data.values()):
        return None
    return compare.compare_ablations(data)


def _jsonable(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def write_report(ablations_dir: Path, names: list[str], tasks: list[str], config_yaml: str, out_dir: Path) -> dict:
    """Write report.md, index.html and loss_curves.png into out_dir; returns the collected data."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ablations = collect(ablations_dir, names)
    if not ablations:
        raise FileNotFoundError(f"no finished ablation under {ablations_dir} (run `winnow ablate` first)")
    plot = out_dir / "loss_curves.png"
    plot_loss_curves(ablations, plot)
    comparison = decide(ablations_dir, ablations, tasks)
    if comparison is not None:
        (out_dir / "decisions.json").write_text(json.dumps(comparison, indent=1, default=_jsonable))
    text = markdown(ablations, tasks, config_yaml, plot.name, comparison)
    (out_dir / "report.md").write_text(text)
    (out_dir / "index.html").write_text(html_page(text, plot))
    return ablations
