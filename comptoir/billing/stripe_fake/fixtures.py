"""Stripe's own example objects, the moulds the fake casts every object it returns from.

Each object starts as a deep copy of the fixture of its resource, and only the fields the fake
manages are overwritten. An override naming a field the fixture does not have is a programming
error, so the field set of every response stays Stripe's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from comptoir.platform.settings import PROJECT_ROOT

# Stripe's openapi/fixtures3.json (MIT licence): the read-only shared copy beside the project when
# there is one, else the copy shipped in the package (data/, with its licence) for fresh clones
# and installed packages.
SHARED_FIXTURES_PATH = PROJECT_ROOT.parent / "shared" / "stripe" / "fixtures3.json"
PACKAGED_FIXTURES_PATH = Path(__file__).resolve().parent / "data" / "fixtures3.json"
DEFAULT_FIXTURES_PATH = (
    SHARED_FIXTURES_PATH if SHARED_FIXTURES_PATH.is_file() else PACKAGED_FIXTURES_PATH
)

# The resources the fake returns, by the name fixtures3.json files them under.
RESOURCES = (
    "account",
    "deleted_account",
    "account_link",
    "payment_intent",
    "payment_method",
    "charge",
    "refund",
    "terminal.location",
    "deleted_terminal.location",
    "terminal.reader",
    "deleted_terminal.reader",
    "event",
)

# Fields Stripe adds to an object in a context its example does not show: events of a connected
# account carry ``account`` (Connect webhooks and ``GET /v1/events`` with ``Stripe-Account``).
CONTEXT_FIELDS: Mapping[str, frozenset[str]] = {"event": frozenset({"account"})}


class FixtureError(RuntimeError):
    """The fixtures file is missing or lacks a resource the fake needs."""


class Fixtures:
    def __init__(self, resources: Mapping[str, Mapping[str, Any]]) -> None:
        missing = [name for name in RESOURCES if name not in resources]
        if missing:
            message = f"Stripe fixtures lack the resources: {', '.join(missing)}."
            raise FixtureError(message)
        self._resources = {name: copy.deepcopy(dict(resources[name])) for name in RESOURCES}

    @classmethod
    def load(cls, path: Path | str | None = None) -> Fixtures:
        location = Path(path) if path else DEFAULT_FIXTURES_PATH
        try:
            document = json.loads(location.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            message = (
                f"Stripe's example objects were not found at {location}. Point the fake at "
                "fixtures3.json from Stripe's openapi repository (option --fixtures)."
            )
            raise FixtureError(message) from error
        return cls(document["resources"])

    def example(self, resource: str) -> dict[str, Any]:
        """A deep copy of Stripe's example object of this resource."""
        return copy.deepcopy(self._resources[resource])

    def build(self, resource: str, **fields: Any) -> dict[str, Any]:
        """Stripe's example of ``resource`` with ``fields`` put in place of the example's."""
        obj = self.example(resource)
        allowed = obj.keys() | CONTEXT_FIELDS.get(resource, frozenset())
        unknown = sorted(set(fields) - allowed)
        if unknown:
            message = f"{resource} has no field {', '.join(unknown)} in Stripe's example."
            raise KeyError(message)
        obj.update(copy.deepcopy(fields))
        return obj
