"""The run report's own chart (the stages' plots are reused as they are): documents and tokens per step."""

from __future__ import annotations

from pathlib import Path

from winnow.figures import figure

STAGE_COLOURS = {"base": "#4c72b0", "dedup": "#dd8452", "subsets": "#8172b3"}
KEPT_COLOUR = "#55a868"


def compact(value: float) -> str:
    """1,234 → '1.2k', 2,460,849 → '2.46M': short labels that keep three significant digits."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}"


def plot_funnel_tokens(rows: list[dict], path: Path, title: str) -> Path:
    """Two panels of horizontal bars, documents and tokens left after each row's step (a '–' where unknown)."""
    labels = [r["step"] for r in rows]
    colours = [KEPT_COLOUR if r["step"] == "base kept" else STAGE_COLOURS.get(r["stage"], "#937860") for r in rows]
    legend = [
        (STAGE_COLOURS["base"], "after a base filter"),
        (KEPT_COLOUR, "base output"),
        (STAGE_COLOURS["dedup"], "after dedup"),
        (STAGE_COLOURS["subsets"], "score subsets"),
    ]
    legend = [(c, label) for c, label in legend if c in colours]  # only the stages that ran
    with figure(
        path, figsize=(11, 0.42 * len(rows) + 1.6), dpi=100, ncols=2, sharey=True, layout_rect=(0, 0.06, 1, 1)
    ) as (fig, axes):  # the bottom 6% holds the legend
        from matplotlib.patches import Rectangle
        from matplotlib.ticker import FuncFormatter

        for ax, key, unit in ((axes[0], "documents", "documents"), (axes[1], "tokens", "GPT-2 tokens")):
            values = [r[key] or 0 for r in rows]
            bars = ax.barh(range(len(rows)), values, color=colours)
            top = max(values + [1])
            for bar, r in zip(bars, rows, strict=True):
                value = r[key]
                note = " – (before extraction)" if value is None else f" {compact(value)}"
                ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=8)
            ax.set_xlim(0, top * 1.35)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: compact(x)))
            ax.set_xlabel(unit)
            ax.grid(axis="x", alpha=0.3)
            ax.spines[["top", "right"]].set_visible(False)
        axes[0].set_yticks(range(len(rows)), labels)
        axes[0].invert_yaxis()
        fig.legend(
            [Rectangle((0, 0), 1, 1, color=c) for c, _ in legend],
            [label for _, label in legend],
            loc="lower center",
            ncol=len(legend),
            fontsize=8,
            frameon=False,
        )
        fig.suptitle(title, fontsize=11)
    return path
