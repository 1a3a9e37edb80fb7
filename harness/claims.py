"""The seed papers' published figures as versioned data (`harness/claims.yaml`), for "paper claim vs reproduced".

Each row is one figure of one paper: which registered method, dataset (and card subset), protocol and metric it
belongs to, its value, what the paper did differently (`conditions`), where in the paper it is (`source`), and a
`flag` that says whether the reproduced value can be compared with it. The report puts `value` beside the
harness's figure for the same (dataset, method, metric) with the gap, and shows the flag where the claim is not
comparable. Rows are validated at load: a bad row is an error naming the file, the row and the field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")
METRICS = ("accuracy", "uar", "macro_f1", "weighted_f1")
FLAGS = ("comparable", "different-conditions", "different-protocol", "unstated-split", "implausible")
_FIELDS = ("id", "paper", "method", "dataset", "subset", "protocol", "metric", "value", "conditions", "source",
           "flag", "why")
UNSTATED = "unstated"  # a claim's protocol when the paper gives no split
_REQUIRED = ("paper", "method", "dataset", "metric", "value", "source", "flag")


class ClaimsError(ValueError):
    """A malformed claims file or row (the message names the file, the row and the field)."""


@dataclass(frozen=True)
class Claim:
    """One published figure. value is a fraction in [0, 1]; flag says whether it compares with the harness's."""

    paper: str
    method: str
    dataset: str
    metric: str
    value: float
    source: str
    flag: str
    subset: str = "default"
    protocol: str = "default"
    conditions: str = ""
    why: str = ""
    id: str = ""

    @property
    def comparable(self) -> bool:
        return self.flag == "comparable"

    def gap(self, reproduced: float) -> float:
        """Reproduced minus claimed (negative: the harness reaches less than the paper reports)."""
        return float(reproduced) - self.value

    def caveat(self, protocol_label: str) -> str:
        """Why this claim cannot be compared with a result evaluated under `protocol_label` ("" when it can).

        A claim made under one protocol is never set against a result of another: the result's protocol label
        names the card alternative it ran under (`harness run --protocol DATASET=NAME`), "default" otherwise.
        """
        from harness.results import protocol_alternative

        reasons = [] if self.comparable else [f"Not comparable ({self.flag}): {self.why}"]
        ran = protocol_alternative(protocol_label)
        if self.protocol == UNSTATED:
            reasons.append("Not comparable (different-protocol): the paper states no split, so no protocol of the "
                           f"harness reproduces it; this result ran under {protocol_label or 'the default'}.")
        elif ran != self.protocol:
            reasons.append(f"Not comparable (different-protocol): the paper's protocol is {self.protocol!r}, this "
                           f"result's is {ran!r} ({protocol_label}); run with --protocol to match it.")
        return " ".join(reasons)


def _parse(row: Any, index: int, path: Path) -> Claim:
    where = f"{path}: claims[{index}]"
    if not isinstance(row, dict):
        raise ClaimsError(f"{where}: expected a mapping with {', '.join(_REQUIRED)}")
    unknown = sorted(set(row) - set(_FIELDS))
    if unknown:
        raise ClaimsError(f"{where}: unknown fields {unknown}; fields are {list(_FIELDS)}")
    missing = [k for k in _REQUIRED if row.get(k) in (None, "")]
    if missing:
        raise ClaimsError(f"{where}: missing {missing}")
    if row["metric"] not in METRICS:
        raise ClaimsError(f"{where}.metric: {row['metric']!r}; use one of {METRICS}")
    if row["flag"] not in FLAGS:
        raise ClaimsError(f"{where}.flag: {row['flag']!r}; use one of {FLAGS}")
    value = row["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ClaimsError(f"{where}.value: {value!r}; write a fraction in [0, 1] (65% is 0.65)")
    if row["flag"] != "comparable" and not row.get("why"):
        raise ClaimsError(f"{where}.why: a claim flagged {row['flag']!r} must say why")
    fields = {k: (float(v) if k == "value" else str(v)) for k, v in row.items() if v is not None}
    return Claim(**fields)


def load_claims(path: Path | str = CLAIMS_FILE) -> list[Claim]:
    """Every claim in the file, validated."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClaimsError(f"{path}: claims file not found") from None
    except yaml.YAMLError as error:
        raise ClaimsError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ClaimsError(f"{path}: expected `version:` and a list under `claims:`")
    return [_parse(row, i, path) for i, row in enumerate(data["claims"])]


@lru_cache(maxsize=1)
def _bundled() -> tuple[Claim, ...]:
    return tuple(load_claims(CLAIMS_FILE))


# Registered variants that run exactly what another claim row names (the row names the paper's method once).
_SAME_AS = {
    "av-xattn-emotion": "av-xattn",  # Table 3: Eq. 16 alone, the setting of av-xattn@paper
    "av-xattn-t1-full": "av-xattn-triplet",  # Table 1's last row is Table 3's triplet row
}
_E2E = "-e2e-"


def _base_method(name: str) -> str:
    """The registered variant a result name runs: `av-xattn@paper` -> `av-xattn` (a preset runs the same
    variant); `av-xattn-e2e-r3d_101` -> `av-xattn` and `av-xattn-triplet-e2e-tiny` -> `av-xattn-triplet` (an
    end-to-end result is its method trained from pixels; `harness e2e` names it `<variant>-e2e-<backbone>`);
    `av-xattn-emotion` -> `av-xattn` (the same loss as the paper's full model)."""
    base = name.split("@", 1)[0]
    if _E2E in base:
        base = base.split(_E2E, 1)[0]
    return _SAME_AS.get(base, base)


def is_end_to_end(method: str) -> bool:
    """Whether a result name is an end-to-end (`harness e2e`) result."""
    return _E2E in method.split("@", 1)[0]


def _base_dataset(name: str) -> tuple[str, str]:
    """`ravdess@song` -> (`ravdess`, `song`); a plain name is the default subset."""
    base, _, subset = name.partition("@")
    return base, subset or "default"


def claims_for(dataset: str, method: str, claims: list[Claim] | None = None) -> list[Claim]:
    """The claims about `method` (a variant name, `@preset` allowed) on `dataset` (`@subset` allowed)."""
    rows = list(_bundled()) if claims is None else claims
    base, subset = _base_dataset(dataset)
    wanted = _base_method(method)
    return [c for c in rows if c.dataset == base and c.subset == subset and _base_method(c.method) == wanted]


def claims_on(dataset: str, claims: list[Claim] | None = None) -> list[Claim]:
    """Every claim about `dataset` (`@subset` allowed), whichever method: the report lists them under the
    dataset's table even when no result matches one, saying why (no result of that method, another protocol)."""
    rows = list(_bundled()) if claims is None else claims
    base, subset = _base_dataset(dataset)
    return [c for c in rows if c.dataset == base and c.subset == subset]


def missing_text(claim: Claim) -> str:
    """Why the report shows no reproduced value beside `claim`, and what would give one."""
    if claim.protocol == UNSTATED:
        how = (f"the paper states no split, so no protocol of the harness reproduces it; a `{claim.method}` result "
               "under any protocol is shown beside it as not comparable")
    else:
        how = f"run `{claim.method}` on {claim.dataset}" + (
            "" if claim.protocol == "default" else f" with --protocol {claim.dataset}={claim.protocol}")
    label = f" ({claim.id})" if claim.id else ""
    return (f"Paper claim for `{claim.method}`{label}: {claim.paper.split('.')[0]} reports {claim.metric} "
            f"{claim.value:.4g} ({claim.source}); no result of this method in this table: {how}."
            + (f" Flagged implausible: {claim.why}." if claim.flag == "implausible" else ""))


def claims_frame(claims: list[Claim] | None = None) -> pd.DataFrame:
    """All claims as a table (one row per figure, the Claim fields as columns, plus `comparable`)."""
    import pandas as pd

    rows = list(_bundled()) if claims is None else claims
    frame = pd.DataFrame([{**asdict(c), "comparable": c.comparable} for c in rows],
                         columns=[*[f for f in Claim.__dataclass_fields__], "comparable"])
    return frame
