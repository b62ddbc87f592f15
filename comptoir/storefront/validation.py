"""Input checks shared by the catalog and shop services.

Services collect every field error of a call in a :class:`FieldErrors` and raise once, so a form or
an API client sees all its mistakes together and nothing is saved.
"""

from __future__ import annotations

import re
from typing import Any

from flask_babel import gettext as _

from comptoir.platform.errors import ValidationError

# A price above this is a typing mistake (ten million dollars); it also keeps to 32-bit columns.
MAX_PRICE = 1_000_000_000
MAX_QUANTITY = 1_000_000_000
SKU_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
COLOR_PATTERN = re.compile(r"^#[0-9a-fA-F]{6}$")


class FieldErrors:
    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(str(message))

    def __bool__(self) -> bool:
        return bool(self.fields)

    def raise_if_any(self) -> None:
        if self.fields:
            raise ValidationError(_("Some fields are not valid."), fields=self.fields)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def clean_text(value: Any, *, max_length: int) -> str:
    if value is None:
        return ""
    return str(value).strip()[: max_length + 1]


def translations(
    errors: FieldErrors,
    field: str,
    fr: Any,
    en: Any,
    *,
    max_length: int,
    required: bool,
) -> tuple[str, str]:
    """Both languages of a translatable text; when required, at least one must be given."""
    cleaned_fr = clean_text(fr, max_length=max_length)
    cleaned_en = clean_text(en, max_length=max_length)
    if required and not cleaned_fr and not cleaned_en:
        errors.add(field, _("Enter this in French, in English, or both."))
    if len(cleaned_fr) > max_length or len(cleaned_en) > max_length:
        errors.add(field, _("Use at most %(count)d characters.", count=max_length))
    return cleaned_fr, cleaned_en


def money(errors: FieldErrors, field: str, value: Any, *, required: bool = True) -> int | None:
    """A price in minor units: a whole number of cents, zero or more."""
    if value is None:
        if required:
            errors.add(field, _("Enter a price."))
        return None
    if not is_integer(value):
        errors.add(field, _("Enter the price as a whole number of cents."))
        return None
    if value < 0:
        errors.add(field, _("A price cannot be negative."))
        return None
    if value > MAX_PRICE:
        errors.add(field, _("This price is too high."))
        return None
    return int(value)


def quantity(errors: FieldErrors, field: str, value: Any, *, minimum: int = 0) -> int | None:
    """An optional whole quantity (stock, maximum per order); None means no limit."""
    if value is None:
        return None
    if not is_integer(value):
        errors.add(field, _("Enter a whole number."))
        return None
    if value < minimum:
        errors.add(field, _("Enter a number of at least %(minimum)d.", minimum=minimum))
        return None
    if value > MAX_QUANTITY:
        errors.add(field, _("This number is too large."))
        return None
    return int(value)


def sku(errors: FieldErrors, field: str, value: Any) -> str | None:
    cleaned = clean_text(value, max_length=64)
    if not cleaned:
        return None
    if not SKU_PATTERN.match(cleaned):
        errors.add(
            field,
            _("Use up to 64 letters, digits, dots, dashes, slashes or underscores, no spaces."),
        )
        return None
    return cleaned


def color(errors: FieldErrors, field: str, value: Any) -> str:
    cleaned = clean_text(value, max_length=7)
    if not COLOR_PATTERN.match(cleaned):
        errors.add(field, _("Enter a colour such as #0b57d0."))
    return cleaned.lower()


def id_list(errors: FieldErrors, field: str, values: Any) -> list[int]:
    """Distinct integer ids, in the order given."""
    if values is None:
        return []
    if not isinstance(values, list | tuple) or not all(is_integer(v) for v in values):
        errors.add(field, _("Give a list of ids."))
        return []
    seen: dict[int, None] = {}
    for value in values:
        seen.setdefault(int(value), None)
    return list(seen)
