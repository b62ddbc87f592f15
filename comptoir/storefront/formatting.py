"""Prices as people read them: ``12,50 $`` in French, ``$12.50`` in English (Canada)."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision

from comptoir.platform.i18n import select_locale


def format_price(amount: int | None, currency: str, locale: str | None = None) -> str:
    if amount is None:
        return ""
    value = Decimal(amount).scaleb(-get_currency_precision(currency))
    return format_currency(value, currency, locale=f"{locale or select_locale()}_CA")


def price_input(amount: int | None, currency: str = "CAD") -> str:
    """Minor units as a decimal string for a form field (``1250`` → ``12.50``)."""
    if amount is None:
        return ""
    precision = get_currency_precision(currency)
    return f"{Decimal(amount).scaleb(-precision):.{precision}f}"
