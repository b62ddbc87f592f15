"""HTML forms of the orders pages: payments, refunds, cancellation, invoice e-mail, filters.

Forms parse and shape input (``12,50`` becomes 1250 cents); the services decide what is valid
and their refusals come back on the fields they name (:func:`apply_error`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import flash
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from comptoir.billing.money import amount_input
from comptoir.platform.errors import DomainError

_AMOUNT = re.compile(r"^(\d{1,9})(?:[.,](\d{1,2}))?$")


def parse_amount(text: str | None) -> int | None:
    """``12``, ``12.5``, ``12,50 $`` → cents; None when empty; ValueError when not an amount."""
    cleaned = str(text or "").replace("$", "").replace("\u00a0", "").replace(" ", "").strip()
    if not cleaned:
        return None
    if cleaned.startswith("-"):
        raise ValueError(_l("An amount cannot be negative."))
    match = _AMOUNT.match(cleaned)
    if match is None:
        raise ValueError(_l("Enter an amount such as 12.50."))
    whole, cents = match.group(1), (match.group(2) or "0").ljust(2, "0")
    return int(whole) * 100 + int(cents)


class MoneyField(StringField):
    """An amount typed in dollars (``12.50`` or ``12,50``), kept as whole cents."""

    def _value(self) -> str:
        if self.raw_data:
            return str(self.raw_data[0])
        return amount_input(self.data) if isinstance(self.data, int) else ""

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = None
        if valuelist:
            self.data = parse_amount(valuelist[0])


class PaymentForm(FlaskForm):
    method = SelectField(_l("Method"), choices=[])
    amount = MoneyField(_l("Amount (empty: the balance)"))
    cash_tendered = MoneyField(_l("Cash received (cash only)"))
    received_on = DateField(_l("Date received"), validators=[Optional()])
    reference = StringField(_l("Reference (cheque, transfer)"), validators=[Length(max=200)])


class RefundForm(FlaskForm):
    kind = SelectField(
        _l("Refund"), choices=[("lines", _l("Some lines")), ("amount", _l("An amount"))]
    )
    amount = MoneyField(_l("Amount, taxes included"))
    reason = TextAreaField(_l("Reason"), validators=[Length(max=2000)])
    method = SelectField(_l("Money goes back by"), choices=[])
    reference = StringField(
        _l("Reference of the money sent back (e-Transfer, cheque)"), validators=[Length(max=200)]
    )
    restock = BooleanField(_l("Return the units to stock"), default=True)


class CancelForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[Length(max=2000)])
    method = SelectField(_l("Money goes back by"), choices=[])
    reference = StringField(
        _l("Reference of the money sent back (e-Transfer, cheque)"), validators=[Length(max=200)]
    )


class SendInvoiceForm(FlaskForm):
    email = StringField(_l("E-mail address"), validators=[Length(max=254)])
    locale = SelectField(_l("Language"), choices=[("fr", "Français"), ("en", "English")])


def day_start(day: Any, timezone: str) -> datetime | None:
    """The start of ``day`` in the organization's time zone, as an aware datetime."""
    if day is None:
        return None
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("America/Toronto")
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def apply_error(form: FlaskForm, error: DomainError, aliases: dict[str, str] | None = None) -> None:
    """Put a service's refusal on the form's fields; what no field names goes to a flash."""
    aliases = aliases or {}
    placed = False
    for name, messages in error.fields.items():
        target = aliases.get(name, name.split(".")[0])
        field = getattr(form, target, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*list(field.errors or []), *messages]
            placed = True
    if not placed:
        flash(error.message, "error")
