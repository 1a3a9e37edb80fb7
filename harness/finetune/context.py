"""Dialogue history for the text encoder: the utterances said before a clip in the same dialogue.

Xie et al. (2021) give the text encoder the previous utterances of the dialogue as context. The manifest says
which clips form a dialogue only through card columns, so the layouts are listed here, first match wins:
- MELD: `split` + `dialogue` (Dialogue_ID restarts in each of train/dev/test), ordered by `utterance`
  (Utterance_ID);
- IEMOCAP: `dialog` (one recorded dialogue), ordered by `start` (seconds into the dialogue).
A corpus with none of these (acted single sentences: RAVDESS, CREMA-D, EmoDB, the synthetic one) gets no context.
Only transcripts are read, never labels, so the test part's history is as available as its own text.
"""

from __future__ import annotations

import pandas as pd

from harness.manifest import Manifest

# (columns that name one dialogue, column that orders its utterances)
DIALOGUE_LAYOUTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("split", "dialogue"), "utterance"),
    (("dialog",), "start"),
)


def dialogue_layout(table: pd.DataFrame) -> tuple[tuple[str, ...], str] | None:
    """The first layout whose columns the manifest fills for every clip; None for a corpus without dialogues."""
    for keys, order in DIALOGUE_LAYOUTS:
        columns = (*keys, order)
        if all(c in table.columns for c in columns) and table[list(columns)].notna().all().all():
            return keys, order
    return None


def dialogue_history(manifest: Manifest, turns: int) -> dict[str, list[str]]:
    """clip id -> the transcripts of up to `turns` utterances before it in its dialogue, oldest first.

    Every clip has an entry (an empty list: the first utterance of a dialogue, `turns=0`, or no dialogues). Blank
    transcripts are skipped, not counted as turns.
    """
    table = manifest.table
    history: dict[str, list[str]] = {str(c): [] for c in table["clip_id"]}
    layout = dialogue_layout(table)
    if turns <= 0 or layout is None:
        return history
    keys, order = layout
    numeric = pd.to_numeric(table[order], errors="coerce")
    ordered = table.assign(_order=numeric if numeric.notna().all() else table[order].astype(str))
    for _, dialogue in ordered.sort_values([*keys, "_order"], kind="stable").groupby(list(keys), sort=False):
        said: list[str] = []
        for clip_id, text in zip(dialogue["clip_id"].astype(str), dialogue["text"], strict=True):
            history[clip_id] = said[-turns:]
            if isinstance(text, str) and text.strip():
                said.append(text.strip())
    return history
