"""Where the field stands beside each leaderboard table: the reader of `harness/sota.yaml`.

The YAML lists the best published results per (corpus, modalities, protocol, metric), each checked at its source
(see the file's header). `best_published_line` turns them into the one line a table shows: the best published
figure under the table's own protocol and metric, or "none comparable" and why. A result whose protocol only
claims to follow the harness's split (`protocol_match: unverified`) is named as such, never as a match.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.results import protocol_alternative

SOTA_FILE = Path(__file__).with_name("sota.yaml")
MATCHES = ("yes", "unverified", "no")
_REQUIRED = ("corpus", "modalities", "system", "source", "year", "values", "protocol", "speaker_independent",
             "harness_protocols", "protocol_match", "checked_at")
_MODALITY_WORDS = {("audio",): "audio", ("video",): "video", ("text",): "text", ("audio", "video"): "audio-visual",
                   ("audio", "text"): "audio+text", ("text", "video"): "text+video",
                   ("audio", "text", "video"): "audio+video+text"}


class SotaError(ValueError):
    """sota.yaml does not have the shape this reader expects; one line naming the entry and the field."""


@dataclass(frozen=True)
class Published:
    corpus: str
    modalities: tuple[str, ...]
    system: str
    source: str
    year: int
    values: dict[str, float]
    protocol: str
    speaker_independent: bool
    harness_protocols: tuple[str, ...]
    protocol_match: str
    checked_at: str

    def text(self, metric: str) -> str:
        independence = "" if self.speaker_independent else ", speaker-dependent"
        return (f"{self.values[metric]:.2f} {metric.upper() if metric == 'uar' else metric} "
                f"({_MODALITY_WORDS.get(tuple(sorted(self.modalities)), '+'.join(self.modalities))}; "
                f"{self.system}; {self.source}{independence})")


@cache
def load(path: Path = SOTA_FILE) -> tuple[int, tuple[Published, ...]]:
    """(version, entries) of the file, checked for shape."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    entries = []
    for i, raw in enumerate(data.get("results") or []):
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise SotaError(f"{path}: results[{i}] lacks {missing}")
        if raw["protocol_match"] not in MATCHES:
            raise SotaError(f"{path}: results[{i}].protocol_match is {raw['protocol_match']!r}; use one of "
                            f"{', '.join(MATCHES)} (quoted: bare yes/no are YAML booleans)")
        entries.append(Published(
            corpus=str(raw["corpus"]), modalities=tuple(raw["modalities"]), system=str(raw["system"]),
            source=str(raw["source"]), year=int(raw["year"]),
            values={str(k): float(v) for k, v in raw["values"].items()}, protocol=str(raw["protocol"]),
            speaker_independent=bool(raw["speaker_independent"]),
            harness_protocols=tuple(str(p) for p in raw["harness_protocols"]),
            protocol_match=raw["protocol_match"], checked_at=str(raw["checked_at"])))
    return int(data["version"]), tuple(entries)


def best_published_line(dataset: str, protocol_label: str, metric: str, path: Path = SOTA_FILE) -> str:
    """The table's line: per modality set, the best published figure whose test partition is this protocol's
    (`protocol_match: yes`), with better figures of unverified match named after it; else why none compares."""
    corpus, _, target = dataset.partition("@")
    version, entries = load(path)
    on_corpus = [e for e in entries if e.corpus == corpus]
    prefix = f"Best published (harness/sota.yaml v{version})"
    if not on_corpus:
        return f"{prefix}: none comparable: no published result for {corpus} is recorded."
    if target:
        return (f"{prefix}: none comparable: published results are for {corpus}'s default label set, not the "
                f"`{target}` target.")
    alternative = protocol_alternative(protocol_label)
    same_split = [e for e in on_corpus if alternative in e.harness_protocols]
    if not same_split:
        elsewhere = sorted({p for e in on_corpus for p in e.harness_protocols})
        hint = (f" (comparable figures exist under --protocol {corpus}={', '.join(elsewhere)})"
                if elsewhere and elsewhere != ["default"] else "")
        return (f"{prefix}: none comparable: no recorded result used this protocol "
                f"(`{alternative}`){hint}.")
    scored = [e for e in same_split if metric in e.values]
    if not scored:
        have = sorted({m for e in same_split for m in e.values})
        return f"{prefix}: none comparable: results under this protocol report {', '.join(have)}, not {metric}."
    parts = []
    for modalities in sorted({e.modalities for e in scored}, key=len, reverse=True):
        group = sorted((e for e in scored if e.modalities == modalities), key=lambda e: -e.values[metric])
        matched = [e for e in group if e.protocol_match == "yes"]
        unverified = [e for e in group if e.protocol_match == "unverified"]
        text = matched[0].text(metric) if matched else ""
        better = [e for e in unverified if not matched or e.values[metric] > matched[0].values[metric]]
        if better:
            text += (("; higher, " if text else "") + f"{better[0].text(metric)} [same split by the paper's "
                     "account, not verified]")
        parts.append(text)
    return f"{prefix} under this protocol: " + " | ".join(parts) + "."

