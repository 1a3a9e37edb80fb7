"""The HTML report opened in a real headless browser: content, images, sorting, dataset picker, full-size matrices."""

from __future__ import annotations

import pytest
from fixtures.browser import headless_page
from fixtures.mlflow_runs import EXPERIMENT, write_mixed_store

pytestmark = pytest.mark.slow  # renders a report (figures for 10 results) and starts Chromium: about 30 s


def test_html_report_in_headless_chromium(tmp_path):
    from harness.report.leaderboard import render

    board = render(write_mixed_store(tmp_path), EXPERIMENT, tmp_path / "reports")
    page_path = board.paths["html"]
    with headless_page() as page:
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert (tmp_path / "report.png").stat().st_size > 10_000

        # table content: the synthetic section ranks late-stack-xgboost first, audio-svm tied with it
        synthetic = page.locator("section#synthetic")
        first = synthetic.locator("table tbody tr").first
        assert first.get_attribute("data-method") == "late-stack-xgboost"
        tied = synthetic.locator("tr[data-method='audio-svm'] td").first
        assert tied.inner_text() == "1="
        assert page.get_by_text("moov atom not found").is_visible()  # the failures table

        # every image (thumbnails, bar charts, heatmaps, fusion gain) loaded
        broken = page.evaluate("[...document.images].filter(i => i.closest('#lightbox') === null)"
                               ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        images = page.evaluate("[...document.images].filter(i => i.closest('#lightbox') === null).length")
        assert images >= 15 and broken == [] and failed == []

        # a click on a confusion thumbnail opens it full size
        thumbnail = synthetic.locator("a.confusion").first
        thumb_width = thumbnail.locator("img").bounding_box()["width"]
        thumbnail.click()
        enlarged = page.locator("#lightbox img")
        enlarged.wait_for(state="visible")
        assert enlarged.bounding_box()["width"] > 2 * thumb_width
        page.screenshot(path=str(tmp_path / "enlarged.png"))
        page.locator("#lightbox").click()
        assert not enlarged.is_visible()

        # sorting by the method column puts audio-svm first; the dataset picker hides the other sections
        synthetic.locator("th", has_text="method").click()
        assert synthetic.locator("table tbody tr").first.get_attribute("data-method") == "audio-svm"
        page.select_option("#dataset-select", "synthetic")
        assert synthetic.is_visible()
        assert not page.locator("section.dataset[data-dataset='emodb']").first.is_visible()
