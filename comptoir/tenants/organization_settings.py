"""The organization's settings that its owners and administrators change themselves.

Same contract as :mod:`comptoir.tenants.services`: explicit arguments, validation before any
change, an audit entry with the values before and after, a flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_babel import gettext as _

from comptoir.platform import audit
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.errors import ValidationError
from comptoir.tenants.models import Organization
from comptoir.tenants.permissions import Permission, ensure

SETTINGS_FIELDS = ("attendant_can_override_prices",)


def settings_of(organization: Organization) -> dict[str, Any]:
    return audit.snapshot(organization, SETTINGS_FIELDS)


def update_settings(
    *, organization: Organization, actor: Actor, changes: Mapping[str, Any]
) -> Organization:
    """Change the settings named in ``changes``; the others keep their values."""
    ensure(actor.role, Permission.MANAGE_ORGANIZATION)
    errors: dict[str, list[str]] = {}
    for name in sorted(set(changes) - set(SETTINGS_FIELDS)):
        errors[name] = [_("Unknown field.")]
    for name in SETTINGS_FIELDS:
        if name in changes and not isinstance(changes[name], bool):
            errors[name] = [_("Choose on or off.")]
    if errors:
        raise ValidationError(_("Some fields are not valid."), fields=errors)
    before = settings_of(organization)
    for name, value in changes.items():
        setattr(organization, name, value)
    after = settings_of(organization)
    if after != before:
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="organization.settings_changed",
            target=organization,
            before=before,
            after=after,
        )
    db.session.flush()
    return organization
