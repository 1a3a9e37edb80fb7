"""The manifest: one row per clip, the only thing later stages know about a corpus.

Media paths are stored relative to the dataset's root so a manifest (and every cache keyed by it) survives
moving the corpus; `Manifest.resolve` turns them back into absolute paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness import atomic
from harness.hashing import stable_hash

REQUIRED_COLUMNS: tuple[str, ...] = ("clip_id", "label", "speaker")
MEDIA_COLUMNS: tuple[str, ...] = ("audio_path", "video_path")
# Bounds (seconds) of a clip inside video_path, for corpora whose video file holds more than one clip (an IEMOCAP
# dialogue); None = the whole file. They apply to the video's audio track too when that is the audio source.
SEGMENT_COLUMNS: tuple[str, ...] = ("video_start", "video_end")
OPTIONAL_COLUMNS: tuple[str, ...] = ("audio_path", "video_path", "text", "session", "split", *SEGMENT_COLUMNS)
MODALITY_SOURCE = {"audio": ("audio_path", "video_path"), "video": ("video_path",), "text": ("text",)}
# Where a media path really is when it is read through a symlink in the user's data tree (absolute; empty for
# a file that is where its path says). Only manifests with such a clip have these columns.
RESOLVED_COLUMNS: tuple[str, ...] = ("audio_resolved", "video_resolved")


def unsafe_clip_id(clip_id: str) -> bool:
    """Whether a clip id could act as a path outside a directory: absolute, or with a `..` component."""
    parts = clip_id.replace("\\", "/").split("/")
    return clip_id.startswith(("/", "\\")) or ".." in parts


class ManifestError(ValueError):
    """A manifest that breaks the schema; the message names the dataset and the fix."""


@dataclass
class Manifest:
    """A dataset's clips.

    table:    DataFrame with at least clip_id, label, speaker; optional audio_path, video_path (relative to
              `root`), text, session, split, video_start/video_end (SEGMENT_COLUMNS) and any extra columns
              (intensity, gender, ...).
    problems: files or rows that could not be turned into clips, with the reason: reported, never dropped.
    scan_counts: what the scan saw ("items": files or rows read, "lost": those that became no clip, "excluded":
              clips whose label the target leaves out by design); empty for a manifest not built by a scan.

    A manifest is immutable once built: `fingerprint()` is computed on first use and cached (it stats every
    media file). Build a new Manifest (e.g. `dataclasses.replace`) rather than editing `table` in place.
    """

    dataset: str
    root: Path
    classes: list[str]
    table: pd.DataFrame
    problems: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "reason"]))
    scan_counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.table = self.table.reset_index(drop=True)
        for column in OPTIONAL_COLUMNS:
            if column not in self.table:
                self.table[column] = None
        self._fingerprint: str | None = None
        self._reject_unsafe_ids()
        self.validate()

    def _reject_unsafe_ids(self) -> None:
        """Move rows whose clip id could name a path outside a store or cache directory (an absolute id, a `..`
        component) to `problems`: ids key feature shards, face-crop caches and clip caches."""
        if self.table.empty or "clip_id" not in self.table:
            return
        unsafe = self.table["clip_id"].astype(str).map(unsafe_clip_id)
        if not unsafe.any():
            return
        rejected = [(clip_id, f"clip id {clip_id!r} contains '..' or starts with '/'; the row is not a clip "
                              "(fix the corpus metadata or the card's clip_id template)")
                    for clip_id in self.table.loc[unsafe, "clip_id"].astype(str)]
        self.table = self.table.loc[~unsafe].reset_index(drop=True)
        self.problems = pd.concat([self.problems, pd.DataFrame(rejected, columns=["path", "reason"])],
                                  ignore_index=True)

    def validate(self) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in self.table]
        if missing:
            raise ManifestError(f"{self.dataset}: manifest lacks columns {missing}")
        duplicated = self.table["clip_id"][self.table["clip_id"].duplicated()].tolist()
        if duplicated:
            raise ManifestError(f"{self.dataset}: duplicate clip ids, e.g. {duplicated[:3]}")
        unknown = sorted(set(self.table["label"]) - set(self.classes))
        if unknown:
            raise ManifestError(f"{self.dataset}: labels {unknown} are not among the classes {self.classes}")

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> list[str]:
        return self.table["clip_id"].tolist()

    def resolve(self, relative: str | None) -> Path | None:
        if relative is None or (isinstance(relative, float)) or relative == "":
            return None
        path = Path(relative)
        return path if path.is_absolute() else self.root / path

    def has_modality(self, modality: str) -> pd.Series:
        """Per clip: whether the manifest names a source for the modality (a file or a transcript)."""
        present = pd.Series(False, index=self.table.index)
        for column in MODALITY_SOURCE[modality]:
            values = self.table[column]
            present |= values.notna() & (values.astype(str) != "")
        return present

    def modalities(self) -> list[str]:
        return [m for m in MODALITY_SOURCE if bool(self.has_modality(m).any())]

    def speakers_of(self, ids: list[str]) -> set[str]:
        return set(self.table.set_index("clip_id").loc[ids, "speaker"].astype(str))

    def fingerprint(self) -> str:
        """Hash of what feature extraction reads: the feature cache key part.

        Ids, media paths (relative, so moving the corpus keeps its caches), each media file's size (so media
        replaced in place are extracted again), transcripts and segment bounds. Bounds count only when some
        clip has one, so manifests without segments are keyed as before bounds existed; so do the real
        locations of media read through a symlink (pointing the link at another copy changes the key).
        Computed once per manifest (a run asks three to five times; each computation stats every media file).
        """
        if self._fingerprint is None:
            self._fingerprint = self._compute_fingerprint()
        return self._fingerprint

    def _compute_fingerprint(self) -> str:
        columns = ["clip_id", "audio_path", "video_path", "text"]
        columns += [c for c in (*SEGMENT_COLUMNS, *RESOLVED_COLUMNS)
                    if c in self.table and (self.table[c].notna() & (self.table[c].astype(str) != "")).any()]
        rows = self.table[columns].astype(str).values.tolist()
        sizes = [[self._size(relative) for relative in self.table[column]] for column in MEDIA_COLUMNS]
        return stable_hash([self.dataset, rows, sizes])

    def _size(self, relative: str | None) -> int:
        """Byte size of a media file, or -1 when the manifest names none or it is not on disk."""
        path = self.resolve(relative)
        return path.stat().st_size if path is not None and path.is_file() else -1

    def class_counts(self) -> pd.Series:
        return self.table["label"].value_counts().reindex(self.classes, fill_value=0)

    # ---- persistence -------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(directory / "manifest.parquet") as tmp:
            self.table.to_parquet(tmp, index=False)
        with atomic.atomic_path(directory / "problems.csv") as tmp:
            self.problems.to_csv(tmp, index=False)
        atomic.write_json(
            directory / "manifest.json",
            {"dataset": self.dataset, "root": str(self.root), "classes": self.classes,
             "fingerprint": self.fingerprint(), "n_clips": len(self), "scan_counts": self.scan_counts},
        )

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        import json

        meta = json.loads((directory / "manifest.json").read_text())
        table = pd.read_parquet(directory / "manifest.parquet")
        problems_path = directory / "problems.csv"
        problems = pd.read_csv(problems_path) if problems_path.exists() else None
        manifest = cls(meta["dataset"], Path(meta["root"]), list(meta["classes"]), table,
                       scan_counts=dict(meta.get("scan_counts", {})))
        if problems is not None:
            manifest.problems = problems
        if manifest.fingerprint() != meta["fingerprint"]:
            raise ManifestError(f"{directory}: manifest does not match its recorded fingerprint; delete the "
                                "directory to rebuild it")
        return manifest
