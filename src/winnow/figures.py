"""One figure preamble for every plot winnow draws (stage plots, the report, the classifier's evaluation).

    with figure(Path("out.png"), figsize=(5.5, 3.6)) as (fig, ax):
        ax.hist(...)

matplotlib is imported here, on first use, with the file-only Agg backend (no display on a cluster node);
the figure is laid out, saved and closed when the block ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def figure(
    png: str | os.PathLike,
    figsize: tuple[float, float] = (6.4, 4.0),
    dpi: int = 110,
    nrows: int = 1,
    ncols: int = 1,
    layout_rect: tuple[float, float, float, float] | None = None,
    **subplots,
) -> Iterator[tuple]:
    """`layout_rect`: the (left, bottom, right, top) box tight_layout fits the axes into, leaving room for a
    figure legend or suptitle outside it; `subplots` go to plt.subplots (sharey=True, ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(nrows, ncols, figsize=figsize, **subplots)
    try:
        yield fig, ax
        fig.tight_layout(rect=layout_rect)
        fig.savefig(png, dpi=dpi)
    finally:
        plt.close(fig)
