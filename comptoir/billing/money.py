"""Amounts and dates as people read them on invoices and in e-mails, in a given language."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, get_currency_precision


def format_money(amount: int | None, currency: str, locale: str) -> str:
    """``12,50 $`` in French, ``$12.50`` in English (Canada)."""
    if amount is None:
        return ""
    value = Decimal(amount).scaleb(-get_currency_precision(currency))
    return format_currency(value, currency, locale=f"{locale}_CA")


def format_rate(rate: Decimal | str, locale: str) -> str:
    """``9,975 %`` / ``9.975%``: a tax rate as printed next to the tax's name."""
    value = Decimal(str(rate)).normalize()
    number = format_decimal(value, format="#,##0.###", locale=f"{locale}_CA")
    return f"{number}\u00a0%" if locale == "fr" else f"{number}%"


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("America/Toronto")


def format_day(moment: datetime | None, locale: str, timezone: str) -> str:
    if moment is None:
        return ""
    return format_date(moment.astimezone(_zone(timezone)), format="long", locale=f"{locale}_CA")


def format_moment(moment: datetime | None, locale: str, timezone: str) -> str:
    if moment is None:
        return ""
    return format_datetime(
        moment.astimezone(_zone(timezone)), format="medium", locale=f"{locale}_CA"
    )


def amount_input(amount: int | None, currency: str = "CAD") -> str:
    """Minor units as a decimal string for a form field (``1250`` → ``12.50``)."""
    if amount is None:
        return ""
    precision = get_currency_precision(currency)
    return f"{Decimal(amount).scaleb(-precision):.{precision}f}"
