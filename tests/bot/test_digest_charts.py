"""The digest's charts are real PNGs, decodable, with alt text that says what they show."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from matplotlib import image as mpimg
from PIL import Image

from bot import digest_charts
from bot.digest_charts import (
    MAX_ALT,
    Bar,
    Chart,
    bar_chart,
    charts_for,
    render_charts,
)
from storage.digest_data import DigestData
from tests.bot.test_digest_blocks import sample_data

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decoded_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(png)) as picture:
        picture.verify()  # checks the chunks and their CRCs
    with Image.open(io.BytesIO(png)) as picture:
        picture.load()
        size = picture.size
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    assert pixels.shape[0] == size[1] and pixels.shape[1] == size[0]
    return size


def test_three_charts_of_a_day_are_valid_pngs_with_alt_text() -> None:
    charts = charts_for(sample_data())
    assert [c.filename for c in charts] == [
        "sentiment.png",
        "share_of_voice.png",
        "volume_by_department.png",
    ]
    for chart in charts:
        width, height = decoded_size(chart.png)
        assert width >= 400 and height >= 150
        assert 0 < len(chart.alt_text) <= MAX_ALT
    sentiment, voice, volume = charts
    assert "lowest -1.00 at" in sentiment.alt_text and "highest +1.00 at" in sentiment.alt_text
    assert "acme 60%" in voice.alt_text and "(previously 50%)" in voice.alt_text
    assert volume.alt_text.startswith("Mentions by department: support 100 (previously 80)")


def test_an_empty_period_still_draws_and_says_so() -> None:
    data = sample_data(rows=0)
    charts = charts_for(data)
    volume = charts[-1]
    decoded_size(volume.png)
    assert volume.alt_text == "Mentions by department: nothing in this period."


def test_alt_text_is_cut_to_slacks_limit() -> None:
    bars = [Bar(f"watch-{n}-" + "x" * 120, n) for n in range(12)]
    chart = bar_chart(bars, title="Share of voice", unit="%", filename="v.png")
    assert len(chart.alt_text) == MAX_ALT
    assert chart.alt_text.endswith("…")


async def test_rendering_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = digest_charts.charts_for

    def spy(data: DigestData) -> list[Chart]:
        seen.append(threading.get_ident())
        return original(data)

    monkeypatch.setattr(digest_charts, "charts_for", spy)
    with ThreadPoolExecutor(max_workers=1) as executor:
        charts = await render_charts(sample_data(), executor=executor)
    assert len(charts) == 3
    assert seen and seen[0] != loop_thread


async def test_a_rendering_failure_gives_no_charts_instead_of_an_error() -> None:
    data = sample_data()
    broken = data.__class__(
        **{**{n: getattr(data, n) for n in data.__dataclass_fields__}, "sentiment": None}
    )
    assert await render_charts(broken) == []
