"""Checkout forms: what a checkout asks the account owner, versioned, and how answers are checked.

An organization has several forms, each with a name, a priority and ordered fields. Every form
starts with the fixed account-owner block (first name, last name, e-mail: required whenever a
customer is captured), then its own fields (:data:`FIELD_TYPES`), labels and help in both
languages. Editing a form's fields makes a new :class:`CheckoutFormVersion`; orders keep the
version they were placed with and its answers, so a past order never changes.

Which form a checkout presents (:func:`select_form`): the highest priority among the forms the
cart's articles name, else the shop's default, else the owner block alone.

:func:`validate_answers` checks answers on the server: missing required fields, an invalid
e-mail, a required consent without a signature, an answer to a field the form does not have.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column, relationship

from comptoir.billing.orders import FormRecord, OwnerInput
from comptoir.platform import audit
from comptoir.platform.audit import Actor
from comptoir.platform.db import (
    BigId,
    JsonColumn,
    Model,
    TenantMixin,
    TimestampMixin,
    UtcDateTime,
    db,
    tenant_foreign_key,
    utcnow,
)
from comptoir.platform.errors import NotFoundError, ValidationError
from comptoir.tenants.models import Organization
from comptoir.tenants.permissions import Permission, ensure

OWNER_KEYS = ("first_name", "last_name", "email")
FIELD_TYPES: dict[str, Any] = {
    "short_text": _l("Short text"),
    "long_text": _l("Long text"),
    "email": _l("E-mail address"),
    "phone": _l("Phone number"),
    "number": _l("Number"),
    "date": _l("Date"),
    "single_choice": _l("Single choice"),
    "multiple_choice": _l("Multiple choice"),
    "checkbox": _l("Checkbox"),
    "heading": _l("Heading or help text"),
    "consent": _l("Consent with e-signature"),
}
CHOICE_TYPES = frozenset({"single_choice", "multiple_choice"})
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
PHONE_PATTERN = re.compile(r"^[0-9+().\- ]{7,40}$")
MAX_FIELDS = 100
MAX_OPTIONS = 50
MAX_LABEL = 300
MAX_HELP = 5000
MAX_SHORT = 200
MAX_LONG = 5000
MAX_NAME = 200
MAX_PRIORITY = 1_000_000
MAX_SIGNATURE_BYTES = 200_000
PNG_PREFIX = "data:image/png;base64,"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class CheckoutForm(TenantMixin, TimestampMixin, Model):
    __tablename__ = "checkout_forms"
    __table_args__ = TenantMixin.tenant_table_args(
        sa.CheckConstraint("current_version >= 1", name="current_version_positive"),
    )

    name: Mapped[str] = mapped_column(sa.String(MAX_NAME), nullable=False)
    priority: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)
    current_version: Mapped[int] = mapped_column(sa.Integer, default=1, nullable=False)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=utcnow)

    versions: Mapped[list[CheckoutFormVersion]] = relationship(
        primaryjoin="CheckoutForm.id == foreign(CheckoutFormVersion.form_id)",
        order_by="CheckoutFormVersion.version",
        viewonly=True,
    )

    def __repr__(self) -> str:
        return f"<CheckoutForm {self.id} v{self.current_version}>"


class CheckoutFormVersion(TenantMixin, TimestampMixin, Model):
    """The fields of one version of a form; never changed once written."""

    __tablename__ = "checkout_form_versions"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["form_id"], "checkout_forms", ondelete="CASCADE"),
        sa.UniqueConstraint(
            "organization_id", "form_id", "version", name="uq_checkout_form_versions_version"
        ),
    )

    form_id: Mapped[int] = mapped_column(BigId, nullable=False)
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # [{"key", "type", "label": {"fr","en"}, "help": {"fr","en"}, "required", "options": [...]}]
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JsonColumn, default=list, nullable=False)
    created_by_label: Mapped[str] = mapped_column(sa.String(254), default="", nullable=False)


# --------------------------------------------------------------------------- definitions


def owner_fields() -> list[dict[str, Any]]:
    """The fixed account-owner block, as the API shows it before a form's own fields."""
    return [
        {
            "key": "first_name",
            "type": "short_text",
            "label": {"fr": "Prénom", "en": "First name"},
            "help": {"fr": "", "en": ""},
            "required": True,
            "options": [],
            "fixed": True,
        },
        {
            "key": "last_name",
            "type": "short_text",
            "label": {"fr": "Nom", "en": "Last name"},
            "help": {"fr": "", "en": ""},
            "required": True,
            "options": [],
            "fixed": True,
        },
        {
            "key": "email",
            "type": "email",
            "label": {"fr": "Courriel", "en": "E-mail address"},
            "help": {"fr": "", "en": ""},
            "required": True,
            "options": [],
            "fixed": True,
        },
    ]


def localized(text: Any, locale: str) -> str:
    """A ``{"fr", "en"}`` text in ``locale``, else the other language."""
    if not isinstance(text, dict):
        return str(text or "")
    other = "en" if locale == "fr" else "fr"
    return str(text.get(locale) or text.get(other) or "")


def _translation(
    errors: dict[str, list[str]], where: str, value: Any, *, max_length: int, required: bool
) -> dict[str, str]:
    if value is None:
        value = {}
    if isinstance(value, str):
        value = {"fr": value, "en": value}
    if not isinstance(value, dict) or set(value) - {"fr", "en"}:
        errors.setdefault(where, []).append(_("Give the text in French and in English."))
        return {"fr": "", "en": ""}
    cleaned = {lang: str(value.get(lang) or "").strip() for lang in ("fr", "en")}
    if required and not (cleaned["fr"] or cleaned["en"]):
        errors.setdefault(where, []).append(_("Enter this in French, in English, or both."))
    if any(len(text) > max_length for text in cleaned.values()):
        errors.setdefault(where, []).append(
            _("Use at most %(count)d characters.", count=max_length)
        )
    return cleaned


def _clean_field(
    errors: dict[str, list[str]], index: int, raw: Any, seen: set[str]
) -> dict[str, Any] | None:
    where = f"fields.{index}"
    if not isinstance(raw, dict):
        errors.setdefault(where, []).append(_("Give the field as an object."))
        return None
    unknown = set(raw) - {"key", "type", "label", "help", "required", "options", "fixed"}
    if unknown:
        errors.setdefault(where, []).append(
            _("Unknown properties: %(names)s.", names=", ".join(sorted(unknown)))
        )
    kind = raw.get("type")
    if kind not in FIELD_TYPES:
        errors.setdefault(f"{where}.type", []).append(
            _("Choose a type among: %(types)s.", types=", ".join(FIELD_TYPES))
        )
        return None
    key = str(raw.get("key") or "").strip()
    if not KEY_PATTERN.match(key):
        errors.setdefault(f"{where}.key", []).append(
            _("Use a lowercase letter, then letters, digits or _ (at most 40).")
        )
    elif key in OWNER_KEYS:
        errors.setdefault(f"{where}.key", []).append(
            _("This key belongs to the account-owner block.")
        )
    elif key in seen:
        errors.setdefault(f"{where}.key", []).append(_("Another field already uses this key."))
    seen.add(key)
    label = _translation(
        errors, f"{where}.label", raw.get("label"), max_length=MAX_LABEL, required=True
    )
    help_text = _translation(
        errors,
        f"{where}.help",
        raw.get("help"),
        max_length=MAX_HELP,
        required=kind == "consent",
    )
    required = raw.get("required", False)
    if not isinstance(required, bool):
        errors.setdefault(f"{where}.required", []).append(_("Choose yes or no."))
        required = False
    if kind == "heading" and required:
        errors.setdefault(f"{where}.required", []).append(_("A heading asks nothing."))
    options: list[dict[str, Any]] = []
    raw_options = raw.get("options") or []
    if kind in CHOICE_TYPES:
        options = _clean_options(errors, where, raw_options)
    elif raw_options:
        errors.setdefault(f"{where}.options", []).append(_("Only choice fields have options."))
    return {
        "key": key,
        "type": kind,
        "label": label,
        "help": help_text,
        "required": bool(required) and kind != "heading",
        "options": options,
    }


def _clean_options(
    errors: dict[str, list[str]], where: str, raw_options: Any
) -> list[dict[str, Any]]:
    if not isinstance(raw_options, list) or not 1 <= len(raw_options) <= MAX_OPTIONS:
        errors.setdefault(f"{where}.options", []).append(
            _("Give from 1 to %(count)d options.", count=MAX_OPTIONS)
        )
        return []
    options: list[dict[str, Any]] = []
    values: set[str] = set()
    for position, raw_option in enumerate(raw_options):
        option_where = f"{where}.options.{position}"
        option = {"label": raw_option} if isinstance(raw_option, str) else raw_option
        if not isinstance(option, dict):
            errors.setdefault(option_where, []).append(_("Give the option as an object."))
            continue
        option_label = _translation(
            errors, option_where, option.get("label"), max_length=MAX_LABEL, required=True
        )
        value = str(option.get("value") or "").strip() or _slug(
            option_label["fr"] or option_label["en"], position
        )
        if value in values or len(value) > 100:
            errors.setdefault(option_where, []).append(_("Each option needs its own value."))
        values.add(value)
        options.append({"value": value, "label": option_label})
    return options


def _slug(text: str, position: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]
    return slug or f"option-{position + 1}"


def clean_fields(raw_fields: Any) -> list[dict[str, Any]]:
    """A form's own fields, checked; the owner block (sent back marked ``fixed``) is left out."""
    if not isinstance(raw_fields, list):
        raise ValidationError(
            _("Some fields are not valid."), fields={"fields": [_("Give a list of fields.")]}
        )
    errors: dict[str, list[str]] = {}
    own = [raw for raw in raw_fields if not (isinstance(raw, dict) and raw.get("fixed"))]
    if len(own) > MAX_FIELDS:
        errors["fields"] = [_("At most %(count)d fields.", count=MAX_FIELDS)]
    seen: set[str] = set()
    cleaned = []
    for index, raw in enumerate(own):
        result = _clean_field(errors, index, raw, seen)
        if result is not None:
            cleaned.append(result)
    if errors:
        raise ValidationError(_("Some fields are not valid."), fields=errors)
    return cleaned


def _clean_name_priority(name: Any, priority: Any) -> tuple[str, int]:
    errors: dict[str, list[str]] = {}
    cleaned = str(name or "").strip()
    if not cleaned:
        errors["name"] = [_("Give the form a name.")]
    elif len(cleaned) > MAX_NAME:
        errors["name"] = [_("Use at most %(count)d characters.", count=MAX_NAME)]
    if not isinstance(priority, int) or isinstance(priority, bool):
        errors["priority"] = [_("Enter a whole number.")]
        priority = 0
    elif not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        errors["priority"] = [_("This number is too large.")]
    if errors:
        raise ValidationError(_("Some fields are not valid."), fields=errors)
    return cleaned, priority


# --------------------------------------------------------------------------- services


def list_forms() -> list[CheckoutForm]:
    return list(
        db.session.execute(
            sa.select(CheckoutForm).order_by(
                CheckoutForm.priority.desc(), CheckoutForm.name, CheckoutForm.id
            )
        ).scalars()
    )


def forms_query() -> sa.Select[Any]:
    return sa.select(CheckoutForm).order_by(
        CheckoutForm.priority.desc(), CheckoutForm.name, CheckoutForm.id
    )


def find_form(form_id: Any) -> CheckoutForm | None:
    """A form of the organization in scope; None for unknown ids and other organizations'."""
    if not isinstance(form_id, int) or isinstance(form_id, bool) or not 1 <= form_id < 2**63:
        return None
    return db.session.get(CheckoutForm, form_id)


def get_form(form_id: int) -> CheckoutForm:
    form = find_form(form_id)
    if form is None:
        message = _("This checkout form does not exist.")
        raise NotFoundError(message, fields={"checkout_form_id": [message]})
    return form


def form_exists(form_id: int) -> bool:
    return find_form(form_id) is not None


def version_of(form: CheckoutForm, version: int | None = None) -> CheckoutFormVersion:
    wanted = version or form.current_version
    row = db.session.execute(
        sa.select(CheckoutFormVersion).where(
            CheckoutFormVersion.form_id == form.id, CheckoutFormVersion.version == wanted
        )
    ).scalar_one_or_none()
    if row is None:  # pragma: no cover - every form has its versions
        raise NotFoundError(_("This checkout form does not exist."))
    return row


def _snapshot(form: CheckoutForm, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": form.name,
        "priority": form.priority,
        "version": form.current_version,
        "fields": [f["key"] for f in fields],
    }


def create_form(
    *, organization: Organization, actor: Actor, name: Any, priority: Any = 0, fields: Any = ()
) -> CheckoutForm:
    ensure(actor.role, Permission.MANAGE_SHOPS)
    cleaned_name, cleaned_priority = _clean_name_priority(name, priority)
    cleaned_fields = clean_fields(list(fields))
    form = CheckoutForm(
        organization_id=organization.id,
        name=cleaned_name,
        priority=cleaned_priority,
        current_version=1,
    )
    db.session.add(form)
    db.session.flush()
    db.session.add(
        CheckoutFormVersion(
            organization_id=organization.id,
            form_id=form.id,
            version=1,
            fields=cleaned_fields,
            created_by_label=actor.label,
        )
    )
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="checkout_form.created",
        target=form,
        after=_snapshot(form, cleaned_fields),
    )
    return form


def update_form(
    *,
    organization: Organization,
    actor: Actor,
    form: CheckoutForm,
    name: Any = None,
    priority: Any = None,
    fields: Any = None,
) -> CheckoutForm:
    """Change a form; new fields make a new version (orders keep the one they were placed with)."""
    ensure(actor.role, Permission.MANAGE_SHOPS)
    form = db.session.execute(
        sa.select(CheckoutForm)
        .where(CheckoutForm.id == form.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    current = version_of(form)
    cleaned_name, cleaned_priority = _clean_name_priority(
        form.name if name is None else name, form.priority if priority is None else priority
    )
    cleaned_fields = current.fields if fields is None else clean_fields(fields)
    before = _snapshot(form, current.fields)
    form.name = cleaned_name
    form.priority = cleaned_priority
    if cleaned_fields != current.fields:
        form.current_version += 1
        db.session.add(
            CheckoutFormVersion(
                organization_id=organization.id,
                form_id=form.id,
                version=form.current_version,
                fields=cleaned_fields,
                created_by_label=actor.label,
            )
        )
    db.session.flush()
    after = _snapshot(form, cleaned_fields)
    if after != before:
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="checkout_form.updated",
            target=form,
            before=before,
            after=after,
        )
    return form


# --------------------------------------------------------------------------- which form


@dataclass(frozen=True)
class Selection:
    form: CheckoutForm | None
    version: CheckoutFormVersion | None
    # Why this form: "article" (an article of the cart asks for it), "default" (the shop's),
    # "chosen" (staff switched to it), "none" (the owner block alone).
    reason: str
    article_name: str = ""

    @property
    def fields(self) -> list[dict[str, Any]]:
        return list(self.version.fields) if self.version is not None else []

    def explanation(self) -> str:
        if self.form is None:
            return _("No checkout form applies: only the account owner is asked.")
        if self.reason == "article":
            return _(
                "“%(form)s” is asked by %(article)s, the article of your cart whose form has the "
                "highest priority.",
                form=self.form.name,
                article=self.article_name,
            )
        if self.reason == "chosen":
            return _("“%(form)s” was chosen by staff for this sale.", form=self.form.name)
        return _(
            "“%(form)s” is this shop's default form: no article of your cart asks for another.",
            form=self.form.name,
        )


def select_form(
    *,
    article_forms: Sequence[tuple[int | None, str]],
    shop_default_id: int | None,
    chosen_id: int | None = None,
) -> Selection:
    """The one form a checkout presents.

    ``article_forms`` are ``(checkout_form_id, article name)`` of the cart's articles; the form
    with the highest priority wins (then the lowest id), else the shop's default. Staff may pass
    ``chosen_id`` (another form of the organization; 404 otherwise).
    """
    if chosen_id is not None:
        form = get_form(chosen_id)
        return Selection(form=form, version=version_of(form), reason="chosen")
    names: dict[int, str] = {}
    for form_id, article_name in article_forms:
        if form_id is not None and form_id not in names:
            names[form_id] = article_name
    if names:
        forms = list(
            db.session.execute(
                sa.select(CheckoutForm)
                .where(CheckoutForm.id.in_(sorted(names)))
                .order_by(CheckoutForm.priority.desc(), CheckoutForm.id)
            ).scalars()
        )
        if forms:
            best = forms[0]
            return Selection(
                form=best, version=version_of(best), reason="article", article_name=names[best.id]
            )
    if shop_default_id is not None:
        default = find_form(shop_default_id)
        if default is not None:
            return Selection(form=default, version=version_of(default), reason="default")
    return Selection(form=None, version=None, reason="none")


# --------------------------------------------------------------------------- answers


@dataclass
class CleanAnswers:
    owner: OwnerInput | None
    answers: dict[str, Any] = field(default_factory=dict)
    consents: list[dict[str, Any]] = field(default_factory=list)

    def record(self, selection: Selection) -> FormRecord | None:
        if selection.form is None and not self.answers:
            return None
        return FormRecord(
            form_id=selection.form.id if selection.form else None,
            version=selection.version.version if selection.version else None,
            name=selection.form.name if selection.form else "",
            fields=selection.fields,
            answers=self.answers,
            consents=self.consents,
        )


def _signature_png(value: Any) -> str | None:
    """A drawn signature as the pad sends it (a PNG data URL), or None when not valid."""
    if not isinstance(value, str) or not value.startswith(PNG_PREFIX):
        return None
    encoded = value[len(PNG_PREFIX) :]
    if len(encoded) > MAX_SIGNATURE_BYTES * 4 // 3 + 4:
        return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not data.startswith(PNG_MAGIC) or len(data) > MAX_SIGNATURE_BYTES:
        return None
    return value


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text if len(text) <= limit else None


class _RefusedError(Exception):
    """An answer that cannot be kept; its message goes on the field."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_Answer = tuple[Any, dict[str, Any] | None]


def _consent_answer(definition: dict[str, Any], value: Any, *, ip: str, locale: str) -> _Answer:
    required = definition["required"]
    if value in (None, "", False, {}):
        if required:
            raise _RefusedError(_("Accept and sign to continue."))
        return None, None
    if not isinstance(value, dict) or set(value) - {"accepted", "signature_png", "typed_name"}:
        raise _RefusedError(_("Give the consent as accepted, with a signature."))
    if value.get("accepted") is not True:
        if required:
            raise _RefusedError(_("Accept and sign to continue."))
        return None, None
    png = value.get("signature_png")
    typed = _text(value.get("typed_name"), MAX_SHORT)
    drawn = _signature_png(png) if png else None
    if png and drawn is None:
        raise _RefusedError(
            _("The drawn signature could not be read; sign again or type your name.")
        )
    if not drawn and not typed:
        raise _RefusedError(_("Sign on the pad or type your full name to sign."))
    signed_at = utcnow().isoformat()
    record = {
        "key": definition["key"],
        "text": localized(definition.get("help"), locale),
        "label": localized(definition.get("label"), locale),
        "signature_png": drawn or "",
        "typed_name": "" if drawn else (typed or ""),
        "signed_at": signed_at,
        "ip": ip,
    }
    answer = {"accepted": True, "signed_at": signed_at, "method": "drawn" if drawn else "typed"}
    return answer, record


def _checkbox_answer(definition: dict[str, Any], value: Any) -> _Answer:
    if value in (None, ""):
        value = False
    if not isinstance(value, bool):
        raise _RefusedError(_("Check or uncheck the box."))
    if definition["required"] and not value:
        raise _RefusedError(_("Check this box to continue."))
    return value, None


def _choices_answer(definition: dict[str, Any], value: Any) -> _Answer:
    if value in (None, ""):
        value = []
    if isinstance(value, str):
        value = [value]
    allowed = {option["value"] for option in definition.get("options", [])}
    if not isinstance(value, list) or any(v not in allowed for v in value):
        raise _RefusedError(_("Choose among the options given."))
    if definition["required"] and not value:
        raise _RefusedError(_("Choose at least one option."))
    return (list(dict.fromkeys(value)) or None), None


def _typed_value(kind: str, text: str, definition: dict[str, Any]) -> Any:
    """A non-empty typed answer in the field's form, or :class:`_RefusedError`."""
    from comptoir.tenants.services import normalize_email

    if kind == "email":
        try:
            return normalize_email(text)
        except ValidationError:
            raise _RefusedError(_("Enter a valid e-mail address.")) from None
    if kind == "phone" and not PHONE_PATTERN.match(text):
        raise _RefusedError(_("Enter a phone number (digits, spaces, + - ( ) .)."))
    if kind == "number":
        try:
            number = Decimal(text.replace(",", ".").replace(" ", ""))
        except InvalidOperation:
            raise _RefusedError(_("Enter a number.")) from None
        if not number.is_finite() or abs(number) > Decimal(10) ** 12:
            raise _RefusedError(_("Enter a number."))
        return str(number)
    if kind == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise _RefusedError(_("Enter a date such as 2026-09-15.")) from None
    if kind == "single_choice":
        allowed = {option["value"] for option in definition.get("options", [])}
        if text not in allowed:
            raise _RefusedError(_("Choose among the options given."))
    return text


def _answer(definition: dict[str, Any], value: Any, *, ip: str, locale: str) -> _Answer:
    """The stored answer of one field (None: unanswered) and, for a consent, its record."""
    kind = definition["type"]
    if kind == "heading":
        if value not in (None, "", {}):
            raise _RefusedError(_("This part of the form asks nothing."))
        return None, None
    if kind == "consent":
        return _consent_answer(definition, value, ip=ip, locale=locale)
    if kind == "checkbox":
        return _checkbox_answer(definition, value)
    if kind == "multiple_choice":
        return _choices_answer(definition, value)
    text = _text(value, MAX_LONG if kind == "long_text" else MAX_SHORT)
    if text is None:
        raise _RefusedError(_("This answer is too long or not text."))
    if not text:
        if definition["required"]:
            raise _RefusedError(_("This field is required."))
        return None, None
    return _typed_value(kind, text, definition), None


def _checked(
    definition: dict[str, Any], value: Any, errors: dict[str, list[str]], *, ip: str, locale: str
) -> _Answer:
    try:
        return _answer(definition, value, ip=ip, locale=locale)
    except _RefusedError as refused:
        errors.setdefault(f"answers.{definition['key']}", []).append(refused.message)
        return None, None


def validate_answers(
    selection: Selection,
    answers: Any,
    *,
    capture_customer: bool,
    ip: str = "",
    locale: str = "fr",
) -> CleanAnswers:
    """Check answers against the form; every mistake at once, as ``answers.<key>`` fields.

    ``capture_customer`` False (a counter sale) accepts no answers at all: nothing is captured.
    """
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        raise ValidationError(
            _("Some fields are not valid."),
            fields={"answers": [_("Give the answers as an object.")]},
        )
    errors: dict[str, list[str]] = {}
    if not capture_customer:
        given = {key for key, value in answers.items() if value not in (None, "", False, [], {})}
        if given:
            message = _("A counter sale captures no customer information.")
            raise ValidationError(message, fields={"answers": [message]})
        return CleanAnswers(owner=None)
    definitions = {definition["key"]: definition for definition in selection.fields}
    for key in sorted(set(answers) - set(definitions) - set(OWNER_KEYS)):
        errors.setdefault(f"answers.{key}", []).append(_("This form has no such field."))
    owner_values = {}
    for key in OWNER_KEYS:
        definition = next(f for f in owner_fields() if f["key"] == key)
        owner_values[key], _consent = _checked(
            definition, answers.get(key), errors, ip=ip, locale=locale
        )
    cleaned: dict[str, Any] = {}
    consents: list[dict[str, Any]] = []
    for key, definition in definitions.items():
        value, consent = _checked(definition, answers.get(key), errors, ip=ip, locale=locale)
        if value is not None:
            cleaned[key] = value
        if consent is not None:
            consents.append(consent)
    if errors:
        raise ValidationError(_("Some answers are not valid."), fields=errors)
    phone = cleaned.get("phone") if definitions.get("phone", {}).get("type") == "phone" else ""
    owner = OwnerInput(
        first_name=str(owner_values["first_name"])[:100],
        last_name=str(owner_values["last_name"])[:100],
        email=str(owner_values["email"]),
        phone=str(phone or "")[:40],
    )
    return CleanAnswers(owner=owner, answers=cleaned, consents=consents)
