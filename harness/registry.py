"""The harness's registries (extractors, datasets, protocols, readers) use the one `Registry` of `methods.registry`.

That class lives in `methods/` because methods must not import the harness, and one class for every registry
keeps ordering (sorted), duplicate handling (an error) and lookup errors the same everywhere.
"""

from __future__ import annotations

from methods.registry import DuplicateNameError, Registry, package_modules

__all__ = ["DuplicateNameError", "Registry", "package_modules"]
