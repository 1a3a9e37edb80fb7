"""The shape of a dataset card, as pydantic models: which fields exist, their types, and what is required.

pydantic does the checking (unknown fields, missing fields, wrong types, enumerations); `validate_card` turns its
report into one `CardError` line that names the card file and the field, e.g.
`datasets/foo.yaml: card.obtain.archives[0].sha256: expected 64 lower-case hex digits, got 'abc'`. What needs more
than the shape (regular expressions, templates against the reader's fields, protocol names, the reader's own
options) is checked by `harness.datasets.cards` and the readers, with errors of the same form.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from harness.datasets.readers import CardError
from harness.names import MAX_NAME, is_name, short

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Modality = Literal["audio", "video", "text"]
# The metrics a corpus can report first: the names harness.metrics.HEADLINE_METRICS scores (a test keeps the two
# equal); a misspelling such as `accuracyy` is rejected at load instead of failing when the report is rendered.
HeadlineMetric = Literal["accuracy", "uar", "macro_f1", "weighted_f1"]
Polarity = Literal["positive", "negative", "neutral"]


class _Strict(BaseModel):
    """Unknown keys are errors (a misspelt key would otherwise be ignored without a word)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class Archive(_Strict):
    name: str
    url: str | None = None
    size: int | None = None
    approx_size: str | int | None = None
    sha256: Sha256 | None = None
    extract: bool | None = None


class Obtain(_Strict):
    instructions: str | None = None
    archives: list[Archive] = []
    checksums: dict[str, Sha256] = {}
    requires_request: bool | str | None = None


class ProtocolChoice(_Strict):
    name: str
    params: dict[str, Any] | None = None


class Ratings(_Strict):
    """Annotator rating counts per clip (perceived emotion) in a side table under the root, for soft-label
    scores: `clip_id` is a template over the table's columns giving the clip id, `rows` keeps the rows whose
    columns match the regexes (e.g. CREMA-D's voice-only rows), `counts` maps count columns to classes."""

    description: str | None = None
    file: str
    clip_id: str
    rows: dict[str, str] = {}
    counts: dict[str, str] = Field(min_length=2)


class Join(_Strict):
    file: str
    key: str
    lookup: str
    columns: dict[str, str]
    required: bool = False


class Derive(_Strict):
    """A field computed from another by an exact `values` map or by `match` (regex -> name, first wins)."""

    source: str = Field(alias="from")
    values: dict[str, str] | None = None
    match: dict[str, str] | None = None

    @model_validator(mode="after")
    def _exactly_one_rule(self) -> Derive:
        if (self.values is None) == (self.match is None):
            raise ValueError("expected `from` and exactly one of `values` or `match`")
        return self


class LabelMap(_Strict):
    format: str
    values: dict[str, str] | None = None


class Target(_Strict):
    label: str | LabelMap
    classes: list[str] = Field(min_length=1)
    description: str = ""


class CardSchema(_Strict):
    """Every top-level field a card may have. Templates (clip_id, speaker, label, ...) are Python format strings
    over the reader's fields; see docs/datasets.md for what each field means."""

    name: str
    title: str
    description: str | None = None
    citation: str | None = None
    licence: str | None = None
    homepage: str | None = None
    layout: str | None = None
    notes: str | None = None
    headline_metric: HeadlineMetric | None = None
    obtain: Obtain = Obtain()
    classes: list[str] = Field(min_length=1)
    modalities: list[Modality] = Field(min_length=1)
    polarity: dict[str, Polarity] = {}
    features: dict[str, str] = {}
    protocol: ProtocolChoice
    protocols: dict[str, ProtocolChoice] = {}
    present: list[str] = ["."]
    reader: dict[str, Any]
    joins: list[Join] = []
    derive: dict[str, Derive] = {}
    clip_id: str
    speaker: str
    label: str | LabelMap
    text: str | None = None
    session: str | None = None
    split: str | None = None
    columns: dict[str, str] = {}
    targets: dict[str, Target] = {}
    # class -> shared cross-corpus class (harness/datasets/cross_corpus.yaml's `shared`) or null to drop it;
    # classes already named as in the shared set need no entry (harness.robustness.cross_corpus)
    cross_corpus: dict[str, str | None] = {}
    ratings: dict[str, Ratings] = {}

    @field_validator("name")
    @classmethod
    def _lower_case_name(cls, name: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise ValueError(f"name {short(name)}: use lower-case letters, digits and '-'")
        return name

    @field_validator("targets", "protocols")
    @classmethod
    def _named_like_cards(cls, named: dict[str, Any]) -> dict[str, Any]:
        """Target and protocol names become result names, paths (manifests) and report text: the name rule."""
        for key in named:
            if not is_name(key):
                raise ValueError(f"{short(key)}: a name uses lower-case letters, digits and '-' (at most "
                                 f"{MAX_NAME} characters), as the card's own name")
        return named

    @model_validator(mode="after")
    def _consistent(self) -> CardSchema:
        if set(self.features) - set(self.modalities):
            raise ValueError(f"features: {sorted(self.features)} names modalities the card does not list")
        bad = {c: p for c, p in self.polarity.items() if c not in self.classes}
        if bad:
            raise ValueError(f"polarity: {bad}: keys must be classes")
        return self


def _where(loc: tuple[Any, ...]) -> str:
    """('obtain', 'archives', 0, 'sha256') -> 'card.obtain.archives[0].sha256' (union branch names dropped)."""
    out = "card"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "LabelMap", "bool", "int") or str(part).startswith(("constrained-str", "function-")):
            continue
        else:
            out += f".{part}"
    return out


def _message(error: dict[str, Any]) -> str:
    kind, message = error["type"], str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        return "missing (required)"
    if kind == "string_pattern_mismatch":
        return f"expected 64 lower-case hex digits, got {short(error['input'])}"
    if kind in ("model_type", "model_attributes_type", "dict_type", "list_type", "string_type", "int_type",
                "bool_type", "literal_error", "too_short"):
        return f"{message}, got {short(error['input'])}"
    return message


def validate_card(data: Any, path: Any) -> CardSchema:
    """The card's fields, checked; the first problem is a CardError naming `path` and the field."""
    if not isinstance(data, dict):
        raise CardError(f"{path}: card: a card is a mapping of fields")
    try:
        return CardSchema.model_validate(data)
    except ValidationError as report:
        errors = report.errors()
        unknown = [e for e in errors if e["type"] == "extra_forbidden"]
        if unknown:  # all unknown keys of one mapping in one line, with the keys that are allowed there
            parent = unknown[0]["loc"][:-1]
            names = sorted(str(e["loc"][-1]) for e in unknown if e["loc"][:-1] == parent)
            raise CardError(f"{path}: {_where(parent)}: unknown field(s) {names}; allowed: "
                            f"{_allowed(parent)}") from None
        first = errors[0]
        raise CardError(f"{path}: {_where(first['loc'])}: {_message(first)}") from None


def _allowed(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model at `loc` (for the unknown-field message)."""
    model: Any = CardSchema
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:  # a key of a mapping of models (protocols.<name>, derive.<name>, targets.<name>)
            continue
        model = _model_in(field.annotation)
    if model is None or not hasattr(model, "model_fields"):
        return []
    return sorted(f.alias or name for name, f in model.model_fields.items())


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside an annotation such as `list[Join]`, `dict[str, Derive]` or `str | LabelMap`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
