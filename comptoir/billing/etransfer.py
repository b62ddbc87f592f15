"""Interac e-Transfer: a shop's settings, the instructions a customer follows, the delays.

The storefront keeps the settings as a shop's ``etransfer`` object; this module says what they
mean and checks them (:func:`clean_settings`). The instructions name the receiving address, the
amount, the order code to write in the transfer's message, and either the security question
(the answer is shared with the customer) or that the address deposits automatically. The shop's
own text, in both languages, is rendered in the sandbox with :data:`INSTRUCTION_VARIABLES`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from comptoir.billing.models import Order
from comptoir.billing.money import format_money
from comptoir.platform.errors import ValidationError
from comptoir.platform.mail import render_tenant_template

MAX_TEXT = 4000
MAX_HOURS = 24 * 60  # sixty days
DEFAULT_REMINDER_HOURS = 48
DEFAULT_CANCEL_HOURS = 120

INSTRUCTION_VARIABLES: list[tuple[str, Any]] = [
    ("order_code", _l("the order code to write in the transfer's message")),
    ("amount", _l("the amount to send, formatted")),
    ("email", _l("the address that receives the transfer")),
    ("organization_name", _l("the organization's name")),
]


@dataclass(frozen=True)
class EtransferSettings:
    email: str = ""
    instructions_fr: str = ""
    instructions_en: str = ""
    security_question: str = ""
    security_answer: str = ""
    auto_deposit: bool = False
    reminder_hours: int = DEFAULT_REMINDER_HOURS
    cancel_hours: int = DEFAULT_CANCEL_HOURS

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EtransferSettings:
        data = data or {}
        defaults = cls()
        values: dict[str, Any] = {}
        for name, default in asdict(defaults).items():
            value = data.get(name, default)
            values[name] = value if isinstance(value, type(default)) else default
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def instructions_text(self, locale: str) -> str:
        preferred = self.instructions_fr if locale == "fr" else self.instructions_en
        return preferred or self.instructions_en or self.instructions_fr

    def remind_at(self, placed_at: datetime) -> datetime:
        return placed_at + timedelta(hours=self.reminder_hours)

    def expires_at(self, placed_at: datetime) -> datetime:
        return placed_at + timedelta(hours=self.cancel_hours)


def _sample_values() -> dict[str, str]:
    return {
        "order_code": "C-1001",
        "amount": "42,00 $",
        "email": "paiements@example.org",
        "organization_name": "Club",
    }


def _hours(errors: dict[str, list[str]], name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_HOURS:
        errors.setdefault(name, []).append(
            _("Enter a number of hours from 1 to %(max)d.", max=MAX_HOURS)
        )
        return 1
    return value


def _check_texts(errors: dict[str, list[str]], data: dict[str, Any]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for name in ("instructions_fr", "instructions_en", "security_question", "security_answer"):
        value = str(data.get(name) or "").strip()
        if len(value) > MAX_TEXT:
            errors.setdefault(name, []).append(
                _("Use at most %(count)d characters.", count=MAX_TEXT)
            )
        elif value and name.startswith("instructions"):
            try:
                render_tenant_template(value, _sample_values(), html=False)
            except ValidationError as error:
                errors[name] = [error.message]
        texts[name] = value
    return texts


def _check_email(errors: dict[str, list[str]], value: Any, *, offered: bool) -> str:
    from comptoir.tenants.services import normalize_email

    email = str(value or "").strip()
    if email:
        try:
            return normalize_email(email)
        except ValidationError:
            errors["email"] = [_("Enter a valid e-mail address.")]
    elif offered:
        errors["email"] = [_("Enter the address that receives the transfers.")]
    return email


def clean_settings(data: Any, *, offered: bool) -> dict[str, Any]:
    """Checked settings as stored on the shop; ``offered``: customers may choose e-Transfer."""
    if not isinstance(data, dict):
        raise ValidationError(_("Give an object."), fields={"etransfer": [_("Give an object.")]})
    unknown = set(data) - set(asdict(EtransferSettings()))
    errors: dict[str, list[str]] = {name: [_("Unknown field.")] for name in sorted(unknown)}
    email = _check_email(errors, data.get("email"), offered=offered)
    texts = _check_texts(errors, data)
    auto_deposit = data.get("auto_deposit", False)
    if not isinstance(auto_deposit, bool):
        errors["auto_deposit"] = [_("Choose yes or no.")]
        auto_deposit = False
    if (
        offered
        and not auto_deposit
        and not (texts["security_question"] and texts["security_answer"])
    ):
        errors["security_question"] = [
            _("Give a security question and its answer, or say the address deposits automatically.")
        ]
    reminder = _hours(errors, "reminder_hours", data.get("reminder_hours", DEFAULT_REMINDER_HOURS))
    cancel = _hours(errors, "cancel_hours", data.get("cancel_hours", DEFAULT_CANCEL_HOURS))
    if "reminder_hours" not in errors and "cancel_hours" not in errors and cancel <= reminder:
        errors["cancel_hours"] = [_("Cancel after the reminder: give more hours.")]
    if errors:
        raise ValidationError(_("Some fields are not valid."), fields=errors)
    return EtransferSettings(
        email=email,
        auto_deposit=auto_deposit,
        reminder_hours=reminder,
        cancel_hours=cancel,
        **texts,
    ).to_dict()


@dataclass(frozen=True)
class Instructions:
    """What the customer reads at step 4 and in the e-mails."""

    email: str
    amount: str
    order_code: str
    security_question: str
    security_answer: str
    auto_deposit: bool
    text: str
    pay_by: datetime | None


def instructions(
    order: Order, settings: EtransferSettings, *, organization_name: str, locale: str, balance: int
) -> Instructions:
    amount = format_money(balance, order.currency, locale)
    text = ""
    source = settings.instructions_text(locale)
    if source:
        try:
            text = render_tenant_template(
                source,
                {
                    "order_code": order.code,
                    "amount": amount,
                    "email": settings.email,
                    "organization_name": organization_name,
                },
                html=False,
            )
        except ValidationError:
            text = source  # checked when saved; never fail a customer's page over it
    return Instructions(
        email=settings.email,
        amount=amount,
        order_code=order.code,
        security_question="" if settings.auto_deposit else settings.security_question,
        security_answer="" if settings.auto_deposit else settings.security_answer,
        auto_deposit=settings.auto_deposit,
        text=text,
        pay_by=order.expires_at,
    )


def order_instructions(
    order: Order, *, organization_name: str, locale: str, balance: int
) -> Instructions | None:
    """The e-Transfer instructions of an order still owing money, from its checkout snapshot."""
    snapshot = (order.payment_details or {}).get("etransfer")
    if not snapshot or balance <= 0 or order.cancelled_at is not None:
        return None
    return instructions(
        order,
        EtransferSettings.from_dict(snapshot),
        organization_name=organization_name,
        locale=locale,
        balance=balance,
    )
