"""The shared protocol, from the copy vendored into the built extension or from the repository.

``build_addon.py`` copies ``shared_protocol`` to ``<add-on>/_vendor/shared_protocol`` so the
installed extension is self-contained; running from a checkout, the top-level package is used.
Vendoring as a subpackage (not a ``sys.path`` entry) keeps two add-ons from clashing.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

_ADDON_PACKAGE = __name__.rsplit(".", 2)[0]


def _load(submodule: str) -> ModuleType:
    vendored = f"{_ADDON_PACKAGE}._vendor.shared_protocol.{submodule}"
    try:
        return importlib.import_module(vendored)
    except ModuleNotFoundError as exc:
        # Only fall back when the vendored copy is absent, never to hide a broken import inside.
        if exc.name not in (
            f"{_ADDON_PACKAGE}._vendor",
            f"{_ADDON_PACKAGE}._vendor.shared_protocol",
        ):
            raise
    return importlib.import_module(f"shared_protocol.{submodule}")


if TYPE_CHECKING:
    from shared_protocol import addresses, client, constraints, errors, keys, messages, motion
else:
    addresses = _load("addresses")
    client = _load("client")
    constraints = _load("constraints")
    errors = _load("errors")
    keys = _load("keys")
    messages = _load("messages")
    motion = _load("motion")

__all__ = ["addresses", "client", "constraints", "errors", "keys", "messages", "motion"]
