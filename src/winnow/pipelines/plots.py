"""The funnel plot of a filtering stage: documents left after each step, and what each step removed."""

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
