"""Prices as people read them: ``12,50 $`` in French, ``$12.50`` in English (Canada)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.numbers import format_currency, get_currency_precision
from flask import g, has_request_context

from comptoir.platform.i18n import select_locale


def current_locale() -> str:
    """The request's language, worked out once per request (pages ask for it per text)."""
    if not has_request_context():
        return select_locale()
    locale: str | None = g.get("storefront_locale")
    if locale is None:
        locale = g.storefront_locale = select_locale()
    return locale


@lru_cache(maxsize=8)
def _babel_locale(locale: str) -> Locale:
    # Parsing a locale costs more than formatting a price; a shop page formats dozens.
    return Locale.parse(f"{locale}_CA")


def format_price(amount: int | None, currency: str, locale: str | None = None) -> str:
    if amount is None:
        return ""
    value = Decimal(amount).scaleb(-get_currency_precision(currency))
    return format_currency(value, currency, locale=_babel_locale(locale or current_locale()))


def price_input(amount: int | None, currency: str = "CAD") -> str:
    """Minor units as a decimal string for a form field (``1250`` → ``12.50``)."""
    if amount is None:
        return ""
    precision = get_currency_precision(currency)
    return f"{Decimal(amount).scaleb(-precision):.{precision}f}"
