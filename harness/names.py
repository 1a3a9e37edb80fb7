"""Names and input that reach the file system, MLflow or a web page: one rule for names, bounded YAML.

Why one module: a name in a card (a target, a protocol), on the command line (`features import --name`,
`--experiment`) or in a settings file becomes a path segment (manifests, the feature store), an MLflow name, and
text or an attribute in `reports/index.html`. The card-name pattern `[a-z0-9][a-z0-9-]*` (at most `MAX_NAME`
characters) cannot hold `/`, `..`, quotes or markup, so checking every such name with it where it is read closes
path escapes and injected markup at once; the HTML writer escapes everything anyway (defence in depth).

YAML: a few hundred bytes of anchors and aliases expand to 10^9 elements, and a validation message that printed
such input with `repr()` took minutes and gigabytes. Settings files and cards are small hand-written files, so
`load_yaml` refuses aliases and files above `MAX_YAML_BYTES`, and `short` bounds every value an error quotes.
"""

from __future__ import annotations

import re
import reprlib
from pathlib import Path
from typing import Any

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
MAX_NAME = 64
MAX_YAML_BYTES = 1_000_000  # the largest card shipped is ~10 kB; a settings file is smaller still

_quote = reprlib.Repr()
_quote.maxstring, _quote.maxother, _quote.maxlist, _quote.maxdict, _quote.maxlevel = 60, 60, 6, 6, 3


class BadName(ValueError):
    """A name that would become a path segment, an MLflow name or markup does not follow the name rule."""


class InputError(ValueError):
    """A settings file or card that is too large, uses YAML aliases, is not UTF-8 or not YAML; one line."""


def short(value: Any) -> str:
    """`repr(value)`, bounded: what an error message may quote of user input (strings cut at 60 characters,
    containers at 6 items, 3 levels deep), so a huge or deeply aliased value never makes a huge message."""
    return _quote.repr(value)


def is_name(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_NAME and NAME_PATTERN.fullmatch(value) is not None


def check_name(kind: str, value: Any) -> str:
    """`value` if it follows the name rule, else a `BadName` naming `kind` (e.g. "card target", "--name")."""
    if not is_name(value):
        raise BadName(f"{kind} {short(value)}: a name uses lower-case letters, digits and '-', starts with a "
                         f"letter or digit and has at most {MAX_NAME} characters")
    return value


class _AliasFound(Exception):
    """Raised by the loader at the first alias; carries its line number."""


def _no_aliases_loader():
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """SafeLoader that refuses aliases (`*name`): an alias is how a tiny file expands to a huge value."""

        def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
            if self.check_event(yaml.AliasEvent):
                raise _AliasFound(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)

    return NoAliasLoader


def load_yaml(path: Path | str, what: str = "file") -> Any:
    """A small hand-written YAML file (settings, card): UTF-8, at most `MAX_YAML_BYTES`, no aliases. Problems are
    one `InputError` line naming the file and the fix; `FileNotFoundError` passes through for the caller."""
    import yaml

    path = Path(path)
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise InputError(f"{what} {path} is {size} bytes; the limit is {MAX_YAML_BYTES} (split it or trim it)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{what} {path} is not UTF-8 (byte {error.start}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_no_aliases_loader())  # noqa: S506 - a SafeLoader subclass
    except _AliasFound as found:
        raise InputError(f"{what} {path}, line {found.args[0]}: YAML aliases (*name) are not allowed; write the "
                         "value out") from None
    except yaml.YAMLError as error:
        raise InputError(f"{what} {path} is not valid YAML: {' '.join(str(error).split())[:300]}") from None
