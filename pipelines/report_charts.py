"""The run report's own chart (the stages' plots are reused as they are): documents and tokens per step."""

from __future__ import annotations

from pathlib import Path

STAGE_COLOURS = {"base": "#4c72b0", "dedup": "#dd8452", "subsets": "#8172b3"}
KEPT_COLOUR = "#55a868"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_funnel_tokens(rows: list[dict], path: Path, title: str) -> Path:
    """Two panels of horizontal bars, documents and tokens left after each row's step (a '–' where unknown)."""
    plt = _pyplot()
    labels = [r["step"] for r in rows]
    colours = [KEPT_COLOUR if r["step"] == "base kept" else STAGE_COLOURS.get(r["stage"], "#937860") for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.42 * len(rows) + 1.6), sharey=True)
    for ax, key, unit in ((axes[0], "documents", "documents"), (axes[1], "tokens", "GPT-2 tokens")):
        values = [r[key] or 0 for r in rows]
        bars = ax.barh(range(len(rows)), values, color=colours)
        top = max(values + [1])
        for bar, r in zip(bars, rows):
            value = r[key]
            if value is None:
                note = " – (before extraction)"
            elif key == "tokens" and value >= 1_000_000:
                note = f" {value / 1e6:,.1f} M"
            else:
                note = f" {value:,}"
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=8)
        ax.set_xlim(0, top * 1.35)
        ax.set_xlabel(unit)
        ax.grid(axis="x", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_yticks(range(len(rows)), labels)
    axes[0].invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in (STAGE_COLOURS["base"], KEPT_COLOUR,
                                                              STAGE_COLOURS["dedup"], STAGE_COLOURS["subsets"])]
    fig.legend(handles, ["after a base filter", "base output", "after dedup", "score subsets"], loc="lower center",
               ncol=4, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
