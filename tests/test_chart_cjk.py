"""The chart draws Chinese terms with the CJK font murmur depends on (noto-cjk-sans-otc), not as boxes,
on a machine without any CJK system font."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import psycopg
import pytest

from murmur.reports.build import Report, build_report
from murmur.reports.chart import packaged_cjk_font, save_chart, trend_figure
from murmur.reports.filters import Filters
from tests.test_reports import seed

MISSING = "missing from font"


@pytest.fixture
def by_term(conn: psycopg.Connection) -> Report:
    """The seeded posts per term: the panels are titled RedNote, 小红书 and TikTok refugee."""
    seed(conn)
    report = build_report(conn, Filters(compare="term"))
    assert "小红书" in {s.label for s in report.series()}
    return report


def _missing_glyphs(draw: object) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw()  # type: ignore[operator]
    return [str(w.message) for w in caught if MISSING in str(w.message)]


def test_the_packaged_font_is_found_for_chinese() -> None:
    from matplotlib import font_manager, ft2font

    path = packaged_cjk_font()
    assert path is not None and path.suffix == ".ttc"
    found = font_manager.findfont(font_manager.FontProperties(family="Noto Sans CJK SC"), fallback_to_default=False)
    assert Path(found) == path
    face = next(f for f in font_manager.fontManager.ttflist if f.name == "Noto Sans CJK SC")
    font = ft2font.FT2Font(face.fname, face_index=face.index)
    assert all(font.get_char_index(ord(c)) for c in "小红书中文難민")  # simplified, traditional, Korean


def test_without_a_cjk_font_the_check_sees_the_boxes(by_term: Report) -> None:
    import matplotlib

    def draw() -> None:
        with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
            trend_figure(by_term).savefig(io.BytesIO(), format="png")

    assert any("DejaVu Sans" in m for m in _missing_glyphs(draw))  # so the test below can fail


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_chinese_series_labels_are_drawn_with_their_glyphs(by_term: Report, tmp_path: Path, suffix: str) -> None:
    chart = tmp_path / f"trend{suffix}"
    assert _missing_glyphs(lambda: save_chart(by_term, chart)) == []
    assert chart.stat().st_size > 1000
