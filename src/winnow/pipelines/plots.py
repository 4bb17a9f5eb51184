"""The stages' own plots, written beside their summary.json (the report copies them):

plot_funnel           base/funnel.png: documents left after each step, and what each step removed
plot_cluster_sizes    dedup/cluster_sizes.png: kept documents by the size of their duplicate cluster
plot_score_histogram  score/ and subsets/score_histogram.png: the classifier's scores, thresholds marked
"""

from __future__ import annotations

from pathlib import Path

from winnow.figures import figure


def plot_funnel(summary: dict, path: str | Path, title: str = "funnel") -> Path:
    """Horizontal bars: documents remaining after each step (from summary['funnel']), removed/failed annotated."""
    steps = summary["funnel"]
    names = [s["step"] for s in steps] + ["kept"]
    left = [s["documents"] for s in steps] + [summary["kept"]]
    path = Path(path)
    with figure(path, figsize=(8, 0.5 * len(names) + 1.5)) as (_, ax):
        bars = ax.barh(range(len(names)), left, color=["#4c72b0"] * (len(names) - 1) + ["#55a868"])
        for i, (bar, step) in enumerate(zip(bars, steps + [None], strict=True)):
            note = f"{left[i]:,}"
            if step and (step.get("removed") or step.get("failed")):
                parts = [f"−{step[k]:,} {k}" for k in ("removed", "failed") if step.get(k)]
                note += f"  ({', '.join(parts)})"
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + note, va="center", fontsize=8)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlabel("documents")
        ax.set_xlim(0, max(left + [1]) * 1.45)
        ax.set_title(title)
    return path


def plot_cluster_sizes(summary: dict, path: str | Path) -> Path:
    """Bars: kept documents by the size of their duplicate cluster (log scale), and what was removed."""
    sizes = summary["cluster_sizes"]
    with figure(path, figsize=(7, 3.5)) as (_, ax):
        ax.bar(range(len(sizes)), list(sizes.values()), color="#4c72b0")
        ax.set_xticks(range(len(sizes)), list(sizes), rotation=90 if len(sizes) > 20 else 0)
        ax.set_yscale("log")
        ax.set_xlabel("minhash_cluster_size")
        ax.set_ylabel("kept documents")
        removed = ", ".join(f"{k}: {v:,}" for k, v in summary["removed"].items()) or "nothing"
        ax.set_title(f"dedup: {summary['read']:,} read, {summary['kept']:,} kept; removed {removed}", fontsize=9)
    return Path(path)


def plot_score_histogram(scored_dir: str | Path, png: str | Path, thresholds: list[int] = (2, 3, 4)) -> Path:
    """Histogram of the `score` column of scored_dir/*.parquet, with the int_score thresholds marked.

    Counted file by file into 50 bins (numpy), never holding every score: drawn from a list of all the scores,
    864k of them (four 216k-row files) took this process to a 473 MB peak; counted, 200 MB."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sorted(Path(scored_dir).glob("*.parquet"))
    low, high, total = -0.5, 5.5, 0
    for path in files:  # the range first (scores outside 0–5 widen it), from one column per file
        extremes = pc.min_max(pq.read_table(path, columns=["score"]).column("score")).as_py()
        if extremes["min"] is not None:
            low, high = min(low, extremes["min"]), max(high, extremes["max"])
    edges = np.linspace(low, high, 51)
    counts = np.zeros(50, dtype=np.int64)
    for path in files:
        scores = pq.read_table(path, columns=["score"]).column("score").to_numpy(zero_copy_only=False)
        counts += np.histogram(scores[~np.isnan(scores)], bins=edges)[0]
        total += len(scores)
    with figure(png, figsize=(5.5, 3.6)) as (_, ax):
        ax.stairs(counts, edges, fill=True, color="#4477aa")
        for t in thresholds:
            ax.axvline(t - 0.5, color="#cc6677", linestyle="--", linewidth=1)
            ax.text(t - 0.5, ax.get_ylim()[1] * 0.95, f" int_score≥{t}", fontsize=7, color="#cc6677", va="top")
        ax.set_xlabel("educational score (classifier)")
        ax.set_ylabel("documents")
        ax.set_title(f"{total} scored documents")
    return Path(png)
