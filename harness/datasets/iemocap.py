"""IEMOCAP reader: utterance labels from `Session*/dialog/EmoEvaluation/*.txt`, transcripts from
`dialog/transcriptions/*.txt`, audio at `sentences/wav/<dialog>/<utterance>.wav`, video at
`dialog/avi/DivX/<dialog>.avi`.

IEMOCAP needs code because its labels live in multi-line evaluation files, not in names or a CSV. The header
line of each evaluated turn reads (tab-separated)

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]

and is followed by the individual annotators' lines, which are ignored: the header carries the consensus
label. The utterance id's last part starts with the speaker's gender (F000, M012), so the speaker is the session
plus that letter (Ses01F): the two actors of a session. Label maps (4-class, 6-class) live in the card.

Video is one file per dialogue, so every utterance names its dialogue's AVI as its video and the card turns the
header's [start - end] into the manifest's video_start/video_end: decoding cuts the utterance out of the file.
The AVI shows both actors side by side; nothing here picks the speaker's half (see docs/datasets.md).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.datasets.readers import Reader, ReadResult, Record, register_reader, reject_unknown

_HEADER = re.compile(
    r"^\[(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\]\s+(?P<utterance>Ses\d\d[FM]_\S+)\s+(?P<emotion>\w+)\s+"
    r"\[(?P<valence>[\d.]+),\s*(?P<arousal>[\d.]+),\s*(?P<dominance>[\d.]+)\]"
)
_TRANSCRIPT = re.compile(r"^(?P<utterance>Ses\d\d[FM]_\S+)\s+\[[\d.]+-[\d.]+\]:\s?(?P<text>.*)$")
_UTTERANCE = re.compile(r"^(?P<dialog>(?P<session>Ses(?P<number>\d\d))[FM]_(?P<kind>impro|script)\S*)_"
                        r"(?P<gender>[FM])\w*$")
FIELDS = ("utterance", "dialog", "session", "session_number", "gender", "speaker", "emotion", "valence",
          "arousal", "dominance", "start", "end", "kind", "transcript", "dialog_video")


def read_transcripts(path: Path) -> dict[str, str]:
    texts = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _TRANSCRIPT.match(line.strip())
        if match:
            texts[match["utterance"]] = match["text"].strip()
    return texts


@register_reader
class IemocapReader(Reader):
    kind = "iemocap"

    def __init__(self, config: dict, where: str) -> None:
        super().__init__(config, where)
        reject_unknown(config, ("kind",), where)

    def field_names(self) -> set[str]:
        return set(FIELDS)

    def read(self, root: Path) -> ReadResult:
        records: list[Record] = []
        problems: list[tuple[str, str]] = []
        sessions = sorted(root.glob("Session[1-5]"))
        for number in range(1, 6):
            if not (root / f"Session{number}").is_dir():
                problems.append((f"Session{number}/", "session folder absent: its utterances are missing"))
        for session_dir in sessions:
            for evaluation in sorted((session_dir / "dialog" / "EmoEvaluation").glob("*.txt")):
                relative = evaluation.relative_to(root).as_posix()
                transcript_file = session_dir / "dialog" / "transcriptions" / evaluation.name
                texts = read_transcripts(transcript_file) if transcript_file.exists() else {}
                if not transcript_file.exists():
                    problems.append((transcript_file.relative_to(root).as_posix(),
                                     "transcription file missing: its utterances have no text"))
                n_headers = 0
                for line in evaluation.read_text(encoding="utf-8", errors="replace").splitlines():
                    if not line.startswith("["):
                        continue
                    header = _HEADER.match(line.strip())
                    utterance = _UTTERANCE.match(header["utterance"]) if header else None
                    if header is None or utterance is None:
                        problems.append((relative, f"unparseable evaluation line {line.strip()!r}"))
                        continue
                    n_headers += 1
                    records.append(self._record(session_dir.name, header, utterance, texts, relative))
                if n_headers == 0:
                    problems.append((relative, "no evaluation lines found"))
        return ReadResult(records, problems)

    @staticmethod
    def _record(session_dir: str, header: re.Match[str], utterance: re.Match[str], texts: dict[str, str],
                source: str) -> Record:
        utt, dialog = header["utterance"], utterance["dialog"]
        fields = {k: header[k] for k in ("start", "end", "emotion", "valence", "arousal", "dominance")}
        fields.update(
            utterance=utt, dialog=dialog, session=utterance["session"], session_number=utterance["number"],
            gender=utterance["gender"], speaker=f"{utterance['session']}{utterance['gender']}",
            kind=utterance["kind"], transcript=texts.get(utt, ""),
            dialog_video=f"{session_dir}/dialog/avi/DivX/{dialog}.avi",
        )
        media = {"audio": f"{session_dir}/sentences/wav/{dialog}/{utt}.wav", "video": fields["dialog_video"]}
        return Record(fields, media, source)
