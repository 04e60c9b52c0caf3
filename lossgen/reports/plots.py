"""Matplotlib helpers shared by the reports: the object-oriented API (no pyplot, no global
state) and PNG bytes without a timestamp, so the same data gives the same file."""

from __future__ import annotations

import io


def figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")
    return fig, fig.subplots()


def integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
