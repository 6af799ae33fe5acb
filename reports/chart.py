"""The trend as a chart: per series, volume as bars and mean sentiment as a line in a band of
+/- 1.96 standard errors (matplotlib's Agg renderer through the Figure API: no pyplot, no GUI)."""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from murmur.reports.filters import STEP, ReportError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from murmur.reports.build import Report

MAX_PANELS = 6
FORMATS = (".png", ".svg", ".pdf")
# Colours used nowhere else in the HTML page, so a test can find the drawn chart in a screenshot.
BAR_COLOR = "#4878d0"
LINE_COLOR = "#d1495b"
_TICK = {"hour": "%m-%d %H:00", "day": "%b %d", "week": "week of %b %d"}
# Chinese terms need a CJK font; whichever of these is installed is used after DejaVu Sans. The first two
# come with murmur (the noto-cjk-sans-otc package: a matplotlib that registers only a collection's first
# face still gets JP, whose glyphs cover Chinese too); the others are system fonts, used where installed.
_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei",
              "WenQuanYi Micro Hei", "Droid Sans Fallback", "AR PL UMing CN", "Microsoft YaHei", "PingFang SC")


@cache
def packaged_cjk_font() -> Path | None:
    """Register the CJK font murmur depends on with matplotlib, once per process; its path, or None when
    the package is missing (then only system fonts can draw Chinese).

    Noto Sans CJK (SIL Open Font License) in one OpenType collection: simplified and traditional Chinese,
    Japanese and Korean in the Regular weight, a font per region (matplotlib registers each face, SC
    among them). matplotlib only scans system font folders, so a font inside a package is added by path."""
    from matplotlib import font_manager

    try:
        import noto_cjk_sans_otc
    except ImportError:
        return None
    path = Path(str(noto_cjk_sans_otc.FONT_PATH))
    if not path.is_file():
        return None
    font_manager.fontManager.addfont(str(path))
    return path


@contextmanager
def _style(svg_text: bool = False) -> Iterator[None]:
    import matplotlib
    from matplotlib import font_manager

    packaged_cjk_font()
    installed = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [name for name in _CJK_FONTS if name in installed]
    rc: dict[str, Any] = {"font.family": ["DejaVu Sans", *cjk], "font.size": 9, "svg.hashsalt": "murmur",
                          "axes.spines.top": False}
    if svg_text:
        rc["svg.fonttype"] = "none"  # text stays text: the browser draws it, with its own CJK fonts
    with matplotlib.rc_context(rc), warnings.catch_warnings():  # type: ignore[arg-type]
        if not cjk:  # only without the package and a system CJK font: boxes, and the table has the term in full
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        yield


def trend_figure(report: Report) -> Figure:
    """One panel per series (the biggest MAX_PANELS): posts as bars on the left axis, mean
    polarity (-1..1) as a line with its band on the right; a period without posts is a gap."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    f = report.filters
    series = report.series()
    shown = series[:MAX_PANELS]
    step = STEP[f.by]
    mids = [t + step / 2 for t in report.periods]
    fig = Figure(figsize=(10, 1.2 + 2.3 * len(shown)), layout="constrained")
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0]
    for ax, s in zip(axes, shown, strict=True):
        ax.bar(mids, [p.posts if p else 0 for p in s.points], width=step.total_seconds() / 86400 * 0.8,
               color=BAR_COLOR, label="posts")
        ax.set_ylabel("posts")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{s.label}: {s.posts} posts", loc="left", fontsize=10)
        pol = ax.twinx()
        mean = [p.mean_polarity if p else math.nan for p in s.points]
        band = [1.96 * p.polarity_se if p else math.nan for p in s.points]
        low = [m - b if math.isnan(m - b) else max(-1.0, m - b) for m, b in zip(mean, band, strict=True)]
        high = [m + b if math.isnan(m + b) else min(1.0, m + b) for m, b in zip(mean, band, strict=True)]
        pol.fill_between(mids, low, high, color=LINE_COLOR, alpha=0.18, linewidth=0, label="±1.96 SE")
        # the band's extent at each point, too: a period between two gaps has no band to draw
        pol.errorbar(mids, mean, yerr=[[m - lo for m, lo in zip(mean, low, strict=True)],
                                       [hi - m for m, hi in zip(mean, high, strict=True)]],
                     fmt="none", ecolor=LINE_COLOR, alpha=0.45, capsize=3, linewidth=1)
        pol.plot(mids, mean, color=LINE_COLOR, marker="o", markersize=3, linewidth=1.6, label="mean polarity")
        pol.axhline(0, color="#999999", linewidth=0.6, linestyle=":")
        pol.set_ylim(-1.05, 1.05)
        pol.set_yticks([-1, -0.5, 0, 0.5, 1])
        pol.set_ylabel("polarity")
        if ax is axes[0]:
            handles = ax.get_legend_handles_labels()[0] + pol.get_legend_handles_labels()[0]
            fig.legend(handles=handles, loc="outside upper right", fontsize=8, frameon=False, ncols=3)
    # one label per period, thinned to about a dozen: the period's start, where bars are centred
    every = -(-len(mids) // 12)
    axes[-1].set_xticks(mids[::every], [t.strftime(_TICK[f.by]) for t in report.periods[::every]])
    axes[-1].set_xlim(mids[0] - step * 0.6, mids[-1] + step * 0.6)
    more = f"; the {MAX_PANELS} biggest of {len(series)} series" if len(series) > len(shown) else ""
    fig.suptitle(f"Posts and mean sentiment per {f.by} (UTC), model {report.model}{more}", fontsize=11,
                 x=0.01, ha="left")
    return fig


def save_chart(report: Report, path: Path) -> None:
    """Write the chart as PNG, SVG or PDF, by the file's suffix."""
    if path.suffix.lower() not in FORMATS:
        raise ReportError(f"--chart {path}: use a .png, .svg or .pdf file name")
    with _style():
        trend_figure(report).savefig(path, dpi=110)


def chart_svg(report: Report) -> str:
    """The chart as an <svg> element to inline in HTML: no prolog, no metadata, scales to its box."""
    buf = io.StringIO()
    with _style(svg_text=True):
        trend_figure(report).savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    return svg.replace("<svg ", '<svg class="chart" role="img" aria-label="trend chart" ', 1)
