"""Stripe's form encoding (``metadata[order_id]=7``, ``payment_method_types[0]=card``) and the
checks every endpoint applies to what it receives."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from comptoir.billing.stripe_fake.errors import (
    StripeFakeError,
    parameter_invalid,
    parameter_missing,
)

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nest bracketed keys into dicts, and dicts keyed ``0, 1, …`` or ``[]`` into lists."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        if match is None:
            raise StripeFakeError(400, f"Invalid parameter name: {raw_key}", param=raw_key)
        parts = [match.group(1), *_PART.findall(match.group(2))]
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            key = str(len(node)) if part == "" else part
            if last:
                node[key] = value
            else:
                child = node.setdefault(key, {})
                if not isinstance(child, dict):
                    raise StripeFakeError(400, f"Invalid parameter: {raw_key}", param=raw_key)
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def allow(params: Mapping[str, Any], names: Iterable[str]) -> None:
    """Refuse parameters the endpoint does not take, as Stripe does."""
    allowed = {*names, "expand"}
    for name in params:
        if name not in allowed:
            raise StripeFakeError(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


def string(params: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise parameter_missing(name)
        return None
    if not isinstance(value, str):
        raise parameter_invalid(name, f"Invalid string: {name}", code="parameter_invalid_string")
    return value


def integer(
    params: Mapping[str, Any], name: str, *, required: bool = False, minimum: int | None = None
) -> int | None:
    raw = string(params, name, required=required)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        message = f"Invalid integer: {raw}"
        raise parameter_invalid(name, message, code="parameter_invalid_integer") from None
    if minimum is not None and value < minimum:
        message = f"This value must be greater than or equal to {minimum}."
        raise parameter_invalid(name, message, code="parameter_invalid_integer")
    return value


def boolean(params: Mapping[str, Any], name: str, default: bool = False) -> bool:
    raw = string(params, name)
    if raw is None:
        return default
    if raw not in {"true", "false"}:
        message = f"Invalid boolean: {raw}"
        raise parameter_invalid(name, message, code="parameter_invalid_string")
    return raw == "true"


def choice(
    params: Mapping[str, Any], name: str, options: Iterable[str], default: str | None = None
) -> str | None:
    raw = string(params, name)
    if raw is None:
        return default
    allowed = list(options)
    if raw not in allowed:
        message = f"Invalid {name}: must be one of {', '.join(allowed)}"
        raise parameter_invalid(name, message)
    return raw


def mapping(params: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        message = f"Invalid object: {name}"
        raise parameter_invalid(name, message, code="parameter_invalid_string")
    return value


def metadata(params: Mapping[str, Any], current: Mapping[str, str] | None = None) -> dict[str, str]:
    """Stripe's metadata update: keys set to an empty string are removed."""
    result = dict(current or {})
    value = params.get("metadata")
    if value is None or value == "":
        return result
    if not isinstance(value, dict):
        raise parameter_invalid("metadata", "Invalid object: metadata")
    for key, item in value.items():
        if not isinstance(item, str):
            raise parameter_invalid(f"metadata[{key}]", f"Invalid string: metadata[{key}]")
        if item == "":
            result.pop(key, None)
        else:
            result[key] = item
    return result


def string_list(params: Mapping[str, Any], name: str) -> list[str] | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise parameter_invalid(name, f"Invalid array: {name}")
    return list(value)
