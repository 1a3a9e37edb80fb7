"""The HTML report opened in a real headless browser: content, images, sorting, dataset picker, full-size matrices."""

from __future__ import annotations

import pytest
from fixtures.browser import headless_page
from fixtures.mlflow_runs import EXPERIMENT, FakeResult, log_result, write_mixed_store

pytestmark = pytest.mark.slow  # renders a report (figures for 10 results) and starts Chromium: about 30 s


def test_html_report_in_headless_chromium(tmp_path):
    from harness.report.leaderboard import render

    uri = write_mixed_store(tmp_path)
    # an anagram of the best method's name seeds the same predictions: identical, so practically equivalent
    log_result(uri, EXPERIMENT, FakeResult("xgboost-late-stack", 0.80, modalities="audio,video", family="classical",
                                           dataset="synthetic", features="audio=egemaps:cccc"))
    board = render(uri, EXPERIMENT, tmp_path / "reports")
    page_path = board.paths["html"]
    with headless_page() as page:
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert (tmp_path / "report.png").stat().st_size > 10_000

        # table content: late-stack-xgboost first; its twin practically equivalent (1=, shaded green); audio-svm
        # not separable (2?, hatched); video-svm worse (plain rank, unshaded): three verdicts, three looks
        synthetic = page.locator("section#synthetic")
        first = synthetic.locator("table tbody tr").first
        assert first.get_attribute("data-method") == "late-stack-xgboost"
        expected = {"xgboost-late-stack": ("1=", "equivalent", "practically equivalent"),
                    "audio-svm": ("3?", "unresolved", "not separable"),
                    "video-svm": ("4", "worse", "worse")}
        looks = {}
        for method, (rank, css, words) in expected.items():
            row = synthetic.locator(f"tr[data-method='{method}']")
            assert row.locator("td").first.inner_text() == rank
            assert row.get_attribute("class") == css and row.locator("td.verdict").inner_text().startswith(words)
            looks[method] = row.locator("td").nth(1).evaluate(
                "c => getComputedStyle(c).backgroundImage + '|' + getComputedStyle(c).backgroundColor")
        assert len(set(looks.values())) == 3, looks  # equivalent, not separable and worse look different
        assert "Resolution: 8 groups" in synthetic.locator("p.resolution").inner_text()
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
