"""Decoding for feature extraction: manifest rows -> `ClipInput`s holding exactly what an extractor needs.

Split from the Ray runner so the decode stage can be read, tested and reused (the local executor, the Ray decode
tasks and the encode actors all call the same functions) without the scheduling around it. Every failure is
returned as a string naming the file, so the runner can record it with its stage instead of dropping the clip.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from harness.features.asr import AUDIO_IF_NO_TEXT
from harness.features.base import ClipInput, Extractor, ExtractorRef
from harness.manifest import SEGMENT_COLUMNS, Manifest
from harness.media import MediaError, load_audio, load_frames, segment_bound


def decode_clip(row: dict[str, Any], extractor: Extractor) -> ClipInput:
    """Decode what the extractor needs; raises MediaError/ValueError naming the file.

    Optional video_start/video_end (seconds) cut the clip out of a video holding several clips, for its frames
    and for its audio when that comes from the video's track.
    """
    start, end = segment_bound(row.get("video_start")), segment_bound(row.get("video_end"))
    clip = ClipInput(clip_id=str(row["clip_id"]), video_path=row.get("video_path") or None, video_start=start,
                     video_end=end)
    needs = extractor.inputs()
    if AUDIO_IF_NO_TEXT in needs and not str(row.get("text") or "").strip():
        needs = (*needs, "audio")  # transcript="auto": ASR only where the manifest has no transcript
    if "audio" in needs:
        source = row.get("audio_path") or row.get("video_path")
        if not source:
            raise MediaError("the manifest names no audio or video file for this clip")
        cut = (None, None) if row.get("audio_path") else (start, end)  # bounds locate the clip in the video file
        clip.audio = load_audio(source, extractor.sample_rate, *cut)
        if float(np.max(np.abs(clip.audio))) == 0.0:
            raise MediaError(f"{source}: audio is silent (every sample is zero)")
    if "video" in needs:
        if not row.get("video_path"):
            raise MediaError("the manifest names no video file for this clip")
        clip.frames, clip.fps = load_frames(row["video_path"], extractor.fps, extractor.max_frames, start, end)
    if "text" in needs:
        clip.text = str(row.get("text") or "")
        if not clip.text.strip() and "audio" not in needs:
            raise ValueError("the manifest has no transcript for this clip")
    return clip


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def decode_or_error(row: dict[str, Any], extractor: Extractor) -> ClipInput | str:
    try:
        return decode_clip(row, extractor)
    except Exception as error:  # recorded with its stage, never dropped
        return error_text(error)


def decode_batch(batch: pd.DataFrame, extractor: ExtractorRef) -> pd.DataFrame:
    """Ray Data CPU task: decode a block into serialised `ClipInput`s, or a decode failure per clip."""
    built = extractor.build()  # cheap: no model is loaded here
    out = []
    for row in batch.to_dict("records"):
        clip = decode_or_error(row, built)
        out.append((str(row["clip_id"]), b"", clip) if isinstance(clip, str) else (clip.clip_id, clip.to_bytes(), ""))
    return pd.DataFrame(out, columns=["clip_id", "payload", "error"])


def media_rows(manifest: Manifest, todo: set[str]) -> pd.DataFrame:
    table = manifest.table[manifest.table["clip_id"].isin(todo)]
    rows = pd.DataFrame({"clip_id": table["clip_id"].astype(str).values})
    for column in ("audio_path", "video_path"):
        rows[column] = [str(p) if (p := manifest.resolve(v)) else "" for v in table[column]]
    rows["text"] = table["text"].fillna("").astype(str).values
    for column in SEGMENT_COLUMNS:
        rows[column] = [segment_bound(v) for v in table[column]]
    return longest_first(rows)


def work_estimate(row: pd.Series) -> float:
    """How long a clip takes to extract, up to a constant: its segment's length, else its media file's size."""
    start, end = segment_bound(row["video_start"]), segment_bound(row["video_end"])
    if start is not None and end is not None:
        return end - start
    for column in ("audio_path", "video_path"):
        if row[column] and os.path.exists(row[column]):
            return float(os.path.getsize(row[column]))
    return 0.0


def longest_first(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered longest clip first (ties by clip id), so the last blocks are the shortest.

    Workers take blocks in order; whoever finishes last is then late by a short block, not a long one
    (the longest-processing-time-first rule for parallel machines).
    """
    estimate = [work_estimate(row) for _, row in rows.iterrows()]
    ordered = rows.assign(_estimate=estimate).sort_values(["_estimate", "clip_id"], ascending=[False, True])
    return ordered.drop(columns="_estimate").reset_index(drop=True)


