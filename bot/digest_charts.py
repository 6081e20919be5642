"""The digest's charts as PNG bytes: sentiment over time, share of voice, volume by department.

Rendering is CPU work, so :func:`render_charts` runs it in an executor, off the event loop.
Figures are built with matplotlib's object API on the Agg canvas directly (never ``pyplot``,
whose global state is not safe across threads, so no global backend switch is needed either),
one figure per chart, nothing kept between calls.

matplotlib (and PIL under it) is imported by the functions that draw, not at start-up: it is
some 50 MB that a running Earful only needs when a digest goes out.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from storage.digest_data import DigestData

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

SIZE = (8.0, 3.6)  # inches; at DPI this is 800×360, sharp on a phone and in a channel
DPI = 100
NEGATIVE = "#d1495b"
POSITIVE = "#2e933c"
NEUTRAL = "#5b6c8f"
BRAND = "#1f6feb"
MAX_BARS = 12
MAX_ALT = 1000  # Slack's limit for alt_txt (files.getUploadURLExternal: alt_txt_too_large)


@dataclass(frozen=True, slots=True)
class Chart:
    filename: str
    title: str
    alt_text: str
    png: bytes


@dataclass(frozen=True, slots=True)
class TrendPoint:
    at: datetime
    mean_compound: float | None
    count: int


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    previous: float | None = None
    highlight: bool = False


def _figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _alt(text: str) -> str:
    return text if len(text) <= MAX_ALT else text[: MAX_ALT - 1] + "…"


def sentiment_chart(points: Sequence[TrendPoint], *, title: str, time_format: str) -> Chart:
    """Mean sentiment per bucket as a line, with the number of mentions as faint bars."""
    figure = _figure(SIZE)
    axes = figure.add_subplot()
    xs = list(range(len(points)))
    counts = [p.count for p in points]
    volume = axes.twinx()
    volume.bar(xs, counts, color=NEUTRAL, alpha=0.18, width=0.8)
    volume.set_ylabel("mentions", color=NEUTRAL)
    volume.set_ylim(bottom=0)
    means = [p.mean_compound for p in points]
    known = [(x, m) for x, m in zip(xs, means, strict=True) if m is not None]
    if known:
        axes.plot([x for x, _ in known], [m for _, m in known], color=BRAND, marker="o", ms=3)
    axes.axhline(0, color="#999999", linewidth=0.8)
    axes.set_ylim(-1, 1)
    axes.set_ylabel("mean sentiment")
    axes.set_zorder(volume.get_zorder() + 1)
    axes.patch.set_visible(False)
    step = max(1, len(points) // 8)
    axes.set_xticks(xs[::step], [p.at.strftime(time_format) for p in points[::step]])
    axes.set_title(title, loc="left", fontsize=11)
    png = _png(figure)
    if known:
        low = min(known, key=lambda item: item[1])
        high = max(known, key=lambda item: item[1])
        summary = (
            f"{title}. Mean sentiment per period from -1 (negative) to 1 (positive); "
            f"lowest {low[1]:+.2f} at {points[low[0]].at.strftime(time_format)}, "
            f"highest {high[1]:+.2f} at {points[high[0]].at.strftime(time_format)}; "
            f"{sum(counts)} mentions in all."
        )
    else:
        summary = f"{title}. No mentions in this period."
    return Chart("sentiment.png", title, _alt(summary), png)


def bar_chart(bars: Sequence[Bar], *, title: str, unit: str, filename: str) -> Chart:
    """Horizontal bars, largest on top, with the previous period as a hollow outline."""
    shown = list(bars)[:MAX_BARS]
    figure = _figure((SIZE[0], max(2.2, 0.42 * len(shown) + 1.2)))
    axes = figure.add_subplot()
    ys = list(range(len(shown)))[::-1]
    colors = [NEGATIVE if b.highlight else BRAND for b in shown]
    axes.barh(ys, [b.value for b in shown], color=colors, height=0.6)
    if any(b.previous is not None for b in shown):
        axes.barh(
            ys,
            [b.previous or 0 for b in shown],
            height=0.6,
            fill=False,
            edgecolor="#333333",
            linestyle="--",
            linewidth=0.8,
            label="previous period",
        )
        axes.legend(loc="lower right", fontsize=8, frameon=False)
    axes.set_yticks(ys, [b.label for b in shown])
    for y, bar in zip(ys, shown, strict=True):
        axes.text(bar.value, y, f" {bar.value:g}{unit}", va="center", fontsize=8)
    axes.set_xlim(left=0)
    axes.set_title(title, loc="left", fontsize=11)
    png = _png(figure)
    if shown:
        parts = []
        for bar in shown:
            before = "" if bar.previous is None else f" (previously {bar.previous:g}{unit})"
            parts.append(f"{bar.label} {bar.value:g}{unit}{before}")
        summary = f"{title}: " + "; ".join(parts) + "."
    else:
        summary = f"{title}: nothing in this period."
    return Chart(filename, title, _alt(summary), png)


def charts_for(data: DigestData) -> list[Chart]:
    """The three charts of a digest, from its numbers (runs in a worker thread)."""
    hourly = data.bucket == "hour"
    charts = [
        sentiment_chart(
            [TrendPoint(p.start, p.mean_compound, p.count) for p in data.sentiment],
            title="Sentiment over time",
            time_format="%H:%M" if hourly else "%a %d",
        )
    ]
    if data.share_of_voice:
        charts.append(
            bar_chart(
                [
                    Bar(
                        v.watch_name,
                        round(v.share_percent, 1),
                        round(v.previous_share_percent, 1),
                        highlight=v.watch_kind == "competitor",
                    )
                    for v in data.share_of_voice
                ],
                title="Share of voice",
                unit="%",
                filename="share_of_voice.png",
            )
        )
    charts.append(
        bar_chart(
            [Bar(v.key, v.count, v.previous) for v in data.by_department],
            title="Mentions by department",
            unit="",
            filename="volume_by_department.png",
        )
    )
    return charts


async def render_charts(data: DigestData, *, executor: Executor | None = None) -> list[Chart]:
    """The charts, rendered off the event loop; an empty list if rendering fails."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(executor, charts_for, data)
    except Exception:
        log.exception("could not render the digest's charts; sending it without them")
        return []
