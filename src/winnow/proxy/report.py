"""Compare ablations: tokens, loss curves, final validation loss, benchmark table, ranking with noise bands.

Reads what `winnow ablate` wrote under `<output_dir>/ablations/` and writes `report.md`, a self-contained
`index.html` (the plot is embedded) and `loss_curves.png`. The noise band of an ablation's metric is
half the spread between its seeds (with 2 seeds: |a - b| / 2); two ablations differ by more than noise
when their means are further apart than the sum of their bands.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from winnow.figures import figure
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
        ppl = [s["eval"]["wikitext"]["word_perplexity"] for s in a["seeds"].values() if "wikitext" in s["eval"]]
        rows.append(
            {
                "name": name,
                "tasks": per_task,
                "average": mean_and_band(averages) if averages else None,
                "val_loss": mean_and_band(losses) if losses else None,
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


def _pct(value_band) -> str:
    if value_band is None:
        return "–"
    mean, band = value_band
    return f"{100 * mean:.1f} ± {100 * band:.1f}"


def markdown(ablations: dict, tasks: list[str], config_yaml: str, plot_name: str) -> str:
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
        "Validation loss is measured on each ablation's own held-out tokens (the last 5 % of its stream), so it",
        "compares seeds and training progress, not datasets; WikiText-2 perplexity is the shared held-out text.",
        "",
        "| ablation | final validation loss (mean ± half-spread over seeds) | per seed | WikiText-2 word perplexity |",
        "|---|---:|---|---:|",
    ]
    for row in rows:
        a = ablations[row["name"]]
        per_seed = ", ".join(f"{s}: {r['final_val_loss']:.4f}" for s, r in sorted(a["seeds"].items()))
        loss = f"{row['val_loss'][0]:.4f} ± {row['val_loss'][1]:.4f}" if row["val_loss"] else "–"
        ppl = f"{row['wikitext_word_ppl'][0]:,.0f}" if row["wikitext_word_ppl"] else "–"
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
        "gap is larger than both the seed noise and the benchmark's standard error.",
        "",
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


def write_report(ablations_dir: Path, names: list[str], tasks: list[str], config_yaml: str, out_dir: Path) -> dict:
    """Write report.md, index.html and loss_curves.png into out_dir; returns the collected data."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ablations = collect(ablations_dir, names)
    if not ablations:
        raise FileNotFoundError(f"no finished ablation under {ablations_dir} (run `winnow ablate` first)")
    plot = out_dir / "loss_curves.png"
    plot_loss_curves(ablations, plot)
    text = markdown(ablations, tasks, config_yaml, plot.name)
    (out_dir / "report.md").write_text(text)
    (out_dir / "index.html").write_text(html_page(text, plot))
    return ablations
