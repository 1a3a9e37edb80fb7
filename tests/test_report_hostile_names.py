"""Hostile names in a tracking store never run script in the HTML report (issue 20).

Names are checked where they are read (cards, flags: `harness.names`), but a store may hold runs written by an
older harness, another tool or a tampered file; the report escapes every text and attribute all the same. This
renders a leaderboard from results whose method, dataset, feature, failure and claim fields carry markup and
attribute breakouts, opens it in headless Chromium and asserts that no dialog opened, no injected element exists
and the names show as text.
"""

from __future__ import annotations

import pandas as pd
import pytest
from fixtures.browser import headless_page
from fixtures.mlflow_runs import EXPERIMENT, FakeResult, log_result

pytestmark = pytest.mark.slow  # starts Chromium (about 10 s)

ATTRIBUTE = "x' onerror='alert(document.domain)"
ELEMENT = "<script>alert(2)</script><img src=z onerror=alert(3) id=injected>"
QUOTE = '"><svg onload=alert(4) id=injected2>'


def test_hostile_names_render_as_text_and_run_no_script(tmp_path) -> None:
    from harness.report.leaderboard import render

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    failures = pd.DataFrame({"modality": ["video"], "clip_id": [ELEMENT], "stage": [QUOTE], "error": [ATTRIBUTE]})
    log_result(uri, EXPERIMENT, FakeResult(ATTRIBUTE, 0.8, dataset=ATTRIBUTE, features=f"audio={QUOTE}"),
               failures=failures)
    log_result(uri, EXPERIMENT, FakeResult(ELEMENT, 0.6, dataset=ATTRIBUTE, features=f"audio={QUOTE}",
                                           family=QUOTE, modalities=ELEMENT))
    log_result(uri, EXPERIMENT, FakeResult("audio-svm", 0.5, dataset=ATTRIBUTE, features=f"audio={QUOTE}"))
    board = render(uri, EXPERIMENT, tmp_path / "reports")
    written = [p for p in (tmp_path / "reports").rglob("*") if p.is_file()]
    assert written and all(p.resolve().is_relative_to((tmp_path / "reports").resolve()) for p in written)
    with headless_page() as page:
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(board.paths["html"].as_uri())
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)
        assert dialogs == []
        assert page.locator("#injected, #injected2, svg[onload], img[onerror]").count() == 0
        assert page.evaluate("[...document.querySelectorAll('*')].filter(e => [...e.attributes].some("
                             "a => a.name.startsWith('on') && a.value.includes('alert'))).length") == 0
        text = page.locator("body").inner_text()
        assert ATTRIBUTE in text and "<script>alert(2)</script>" in text
