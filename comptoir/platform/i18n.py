"""Language choice: the person's choice, else the organization's default, else the browser's."""

from __future__ import annotations

from flask import g, has_request_context, request, session
from flask_login import current_user

LOCALES = ("fr", "en")
SESSION_KEY = "locale"


def select_locale() -> str:
    if not has_request_context():
        return "en"
    chosen = request.args.get("lang") or session.get(SESSION_KEY)
    if chosen in LOCALES:
        return str(chosen)
    user_locale = getattr(current_user, "locale", None) if current_user else None
    if user_locale is not None and str(user_locale) in LOCALES:
        return str(user_locale)
    organization = g.get("organization")
    if organization is not None:
        return str(organization.default_locale)
    return request.accept_languages.best_match(LOCALES) or "en"


def remember_locale_choice() -> None:
    """``?lang=fr`` on any page switches the language for the rest of the visit."""
    chosen = request.args.get("lang")
    if chosen in LOCALES:
        session[SESSION_KEY] = chosen
