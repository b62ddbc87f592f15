"""Admin pages of the checkout: Checkout forms (E-Commerce), and three shop settings tabs —
Payment (methods offered, e-Transfer), Customer form (the shop's default form) and Communication
(the e-mail templates with their live preview, staff notified, the forced copy).

The settings tabs are served by ``storefront_admin.shop_settings``, which hands these tabs to
:func:`settings_tab`; the forms pages and the preview have routes of their own here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _

from comptoir.billing import communications, etransfer, payment_methods, stripe_connect
from comptoir.platform.db import db
from comptoir.platform.errors import DomainError, ValidationError
from comptoir.storefront import checkout_forms
from comptoir.storefront import shops as shop_services
from comptoir.storefront.checkout_forms import FIELD_TYPES, localized
from comptoir.storefront.models import Shop
from comptoir.tenants.context import current_actor, current_role, install_organization_url_handling
from comptoir.tenants.guards import staff_required
from comptoir.tenants.models import Membership, User
from comptoir.tenants.navigation import set_endpoint
from comptoir.tenants.permissions import Permission, role_can

blueprint = Blueprint("storefront_checkout_admin", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)
set_endpoint("checkout_forms", "storefront_checkout_admin.forms")

shops_required = staff_required(Permission.MANAGE_SHOPS)
TABS = ("payment", "customer-form", "communication")
BLANK_FIELD_ROWS = 3


# --------------------------------------------------------------------------- checkout forms


@blueprint.get("/checkout-forms/")
@shops_required
def forms() -> Any:
    rows = checkout_forms.list_forms()
    used_by = dict(
        db.session.execute(
            sa.select(Shop.default_checkout_form_id, sa.func.count())
            .where(Shop.default_checkout_form_id.is_not(None))
            .group_by(Shop.default_checkout_form_id)
        ).all()
    )
    return render_template(
        "storefront/admin/checkout_forms.html",
        forms=rows,
        used_by=used_by,
        versions={form.id: checkout_forms.version_of(form) for form in rows},
    )


def _options_text(options: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{option['value']} | {option['label'].get('fr', '')} | {option['label'].get('en', '')}"
        for option in options
    )


def _parse_options(text: str) -> list[dict[str, Any]]:
    options = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        parts = [part.strip() for part in line.split("|")]
        if len(parts) >= 3:
            value, fr, en = parts[0], parts[1], parts[2]
        elif len(parts) == 2:
            value, fr, en = "", parts[0], parts[1]
        else:
            value, fr, en = "", parts[0], parts[0]
        options.append({"value": value, "label": {"fr": fr, "en": en}})
    return options


def _rows_from_fields(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        {
            "key": field["key"],
            "type": field["type"],
            "label_fr": field["label"].get("fr", ""),
            "label_en": field["label"].get("en", ""),
            "help_fr": field["help"].get("fr", ""),
            "help_en": field["help"].get("en", ""),
            "required": field["required"],
            "options": _options_text(field.get("options", [])),
            "position": str(index + 1),
        }
        for index, field in enumerate(fields)
    ]
    return rows + [
        {"key": "", "type": "", "position": str(len(fields) + 1 + index)}
        for index in range(BLANK_FIELD_ROWS)
    ]


def _rows_from_request() -> list[dict[str, Any]]:
    rows = []
    index = 0
    while f"fields-{index}-type" in request.form and index < checkout_forms.MAX_FIELDS + 10:
        prefix = f"fields-{index}-"
        rows.append(
            {
                "key": request.form.get(prefix + "key", "").strip(),
                "type": request.form.get(prefix + "type", ""),
                "label_fr": request.form.get(prefix + "label_fr", ""),
                "label_en": request.form.get(prefix + "label_en", ""),
                "help_fr": request.form.get(prefix + "help_fr", ""),
                "help_en": request.form.get(prefix + "help_en", ""),
                "required": request.form.get(prefix + "required") == "1",
                "options": request.form.get(prefix + "options", ""),
                "position": request.form.get(prefix + "position", ""),
                "remove": request.form.get(prefix + "remove") == "1",
            }
        )
        index += 1
    return rows


def _fields_from_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """The fields in the order given by their positions; blank and removed rows left out.

    Returns the fields and, for each, the row it came from (to put errors back on the row).
    """
    kept = []
    for index, row in enumerate(rows):
        if row.get("remove") or not row.get("type"):
            continue
        position = row.get("position", "")
        order = int(position) if position.strip().lstrip("-").isdigit() else 10_000 + index
        kept.append((order, index, row))
    kept.sort(key=lambda item: (item[0], item[1]))
    fields = [
        {
            "key": row["key"],
            "type": row["type"],
            "label": {"fr": row["label_fr"], "en": row["label_en"]},
            "help": {"fr": row["help_fr"], "en": row["help_en"]},
            "required": bool(row["required"]),
            "options": _parse_options(row["options"])
            if row["type"] in checkout_forms.CHOICE_TYPES
            else [],
        }
        for _order, _index, row in kept
    ]
    return fields, [index for _order, index, _row in kept]


def _row_errors(error: DomainError, origin: list[int]) -> dict[str, list[str]]:
    """Service errors (``fields.<n>.label``) keyed by the page's rows (``fields-<row>``)."""
    errors: dict[str, list[str]] = {}
    for name, messages in error.fields.items():
        parts = name.split(".")
        if (
            parts[0] == "fields"
            and len(parts) > 1
            and parts[1].isdigit()
            and int(parts[1]) < len(origin)
        ):
            errors.setdefault(f"fields-{origin[int(parts[1])]}", []).extend(messages)
        else:
            errors.setdefault(parts[0], []).extend(messages)
    return errors


def _form_page(
    form: checkout_forms.CheckoutForm | None,
    *,
    name: str,
    priority: str,
    rows: list[dict[str, Any]],
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Any:
    return (
        render_template(
            "storefront/admin/checkout_form.html",
            form=form,
            name=name,
            priority=priority,
            rows=rows,
            errors=errors or {},
            types=list(FIELD_TYPES.items()),
            versions=form.versions if form is not None else [],
        ),
        status,
    )


def _save(form: checkout_forms.CheckoutForm | None) -> Any:
    rows = _rows_from_request()
    if request.form.get("add_rows"):
        rows.extend({"key": "", "type": "", "position": ""} for _index in range(BLANK_FIELD_ROWS))
        return _form_page(
            form,
            name=request.form.get("name", ""),
            priority=request.form.get("priority", "0"),
            rows=rows,
        )
    fields, origin = _fields_from_rows(rows)
    name = request.form.get("name", "")
    priority_text = request.form.get("priority", "0").strip() or "0"
    try:
        priority: Any = int(priority_text)
    except ValueError:
        priority = priority_text
    try:
        if form is None:
            form = checkout_forms.create_form(
                organization=g.organization,
                actor=current_actor(),
                name=name,
                priority=priority,
                fields=fields,
            )
        else:
            checkout_forms.update_form(
                organization=g.organization,
                actor=current_actor(),
                form=form,
                name=name,
                priority=priority,
                fields=fields,
            )
    except DomainError as error:
        db.session.rollback()
        return _form_page(
            None if form is None else checkout_forms.find_form(form.id),
            name=name,
            priority=priority_text,
            rows=rows,
            errors=_row_errors(error, origin),
            status=422,
        )
    db.session.commit()
    flash(_("The checkout form is saved."), "success")
    return redirect(url_for("storefront_checkout_admin.form_edit", form_id=form.id))


@blueprint.route("/checkout-forms/new", methods=["GET", "POST"])
@shops_required
def form_new() -> Any:
    if request.method == "POST":
        return _save(None)
    return _form_page(None, name="", priority="0", rows=_rows_from_fields([]))


@blueprint.route("/checkout-forms/<int:form_id>", methods=["GET", "POST"])
@shops_required
def form_edit(form_id: int) -> Any:
    form = checkout_forms.find_form(form_id)
    if form is None:
        abort(404)
    if request.method == "POST":
        return _save(form)
    version = checkout_forms.version_of(form)
    return _form_page(
        form, name=form.name, priority=str(form.priority), rows=_rows_from_fields(version.fields)
    )


# --------------------------------------------------------------------------- settings tabs


def _tab_page(
    shop: Shop, tab: str, tabs: list[tuple[str, Any]], *, status: int = 200, **context: Any
) -> Any:
    template = {
        "payment": "storefront/admin/shop_payment.html",
        "customer-form": "storefront/admin/shop_customer_form.html",
        "communication": "storefront/admin/shop_communication.html",
    }[tab]
    return render_template(template, shop=shop, tab=tab, tabs=tabs, **context), status


def _update(shop: Shop, changes: dict[str, Any]) -> None:
    shop_services.update_shop(
        organization=g.organization,
        actor=current_actor(),
        shop=shop,
        data=shop_services.merge(shop_services.shop_data(shop), changes),
    )


def _hours(name: str, default: int) -> Any:
    text = request.form.get(name, "").strip()
    if not text:
        return default
    return int(text) if text.isdigit() and len(text) < 9 else text


def _payment_tab(shop: Shop, tabs: list[tuple[str, Any]]) -> Any:
    offerable = [(m.name, m.label) for m in payment_methods.shop_offerable()]
    settings = etransfer.EtransferSettings.from_dict(shop.etransfer)
    context: dict[str, Any] = {
        "offerable": offerable,
        "methods": list(shop.payment_methods),
        "settings": settings.to_dict(),
        "variables": etransfer.INSTRUCTION_VARIABLES,
        "errors": {},
        # Card needs the organization's Stripe account with payments enabled (see the note).
        "card_ready": stripe_connect.card_payments_ready(g.organization),
        "can_manage_stripe": role_can(current_role(), Permission.MANAGE_STRIPE),
    }
    if request.method == "GET":
        return _tab_page(shop, "payment", tabs, **context)
    methods = [name for name, _label in offerable if request.form.get(f"method-{name}") == "1"]
    values = {
        "email": request.form.get("email", ""),
        "instructions_fr": request.form.get("instructions_fr", ""),
        "instructions_en": request.form.get("instructions_en", ""),
        "security_question": request.form.get("security_question", ""),
        "security_answer": request.form.get("security_answer", ""),
        "auto_deposit": request.form.get("auto_deposit") == "1",
        "reminder_hours": _hours("reminder_hours", etransfer.DEFAULT_REMINDER_HOURS),
        "cancel_hours": _hours("cancel_hours", etransfer.DEFAULT_CANCEL_HOURS),
    }
    try:
        _update(shop, {"payment_methods": methods, "etransfer": values})
    except DomainError as error:
        db.session.rollback()
        errors = {
            name.removeprefix("etransfer."): messages for name, messages in error.fields.items()
        }
        return _tab_page(
            shop,
            "payment",
            tabs,
            status=422,
            **{**context, "methods": methods, "settings": values, "errors": errors},
        )
    db.session.commit()
    flash(_("The payment settings are saved."), "success")
    return redirect(url_for("storefront_admin.shop_settings", shop_slug=shop.slug, tab="payment"))


def _customer_form_tab(shop: Shop, tabs: list[tuple[str, Any]]) -> Any:
    context: dict[str, Any] = {"forms": checkout_forms.list_forms(), "errors": {}}
    if request.method == "GET":
        return _tab_page(shop, "customer-form", tabs, **context)
    value = request.form.get("default_checkout_form_id", "")
    chosen = int(value) if value.isdigit() and len(value) < 19 else None
    try:
        _update(shop, {"default_checkout_form_id": chosen})
    except DomainError as error:
        db.session.rollback()
        return _tab_page(
            shop, "customer-form", tabs, status=422, **{**context, "errors": error.fields}
        )
    db.session.commit()
    flash(_("The shop's default form is saved."), "success")
    return redirect(
        url_for("storefront_admin.shop_settings", shop_slug=shop.slug, tab="customer-form")
    )


def _staff_members() -> list[User]:
    return list(
        db.session.execute(
            sa.select(User).join(Membership, Membership.user_id == User.id).order_by(User.email)
        ).scalars()
    )


def _communication_values() -> dict[str, Any]:
    templates: dict[str, dict[str, dict[str, str]]] = {}
    for kind in communications.KINDS:
        for locale in communications.LOCALES:
            templates.setdefault(kind, {})[locale] = {
                "subject": request.form.get(f"{kind}-{locale}-subject", ""),
                "body": request.form.get(f"{kind}-{locale}-body", ""),
            }
    notify = [
        int(v) for v in request.form.getlist("notify_user_ids") if v.isdigit() and len(v) < 19
    ]
    return {
        "templates": templates,
        "notify_user_ids": notify,
        "forced_copy": request.form.get("forced_copy", ""),
    }


def _communication_tab(shop: Shop, tabs: list[tuple[str, Any]]) -> Any:
    current = communications.CommunicationSettings.from_dict(shop.communication)
    context: dict[str, Any] = {
        "templates": current.templates,
        "notify_user_ids": list(current.notify_user_ids),
        "forced_copy": current.forced_copy,
        "staff_members": _staff_members(),
        "variables": communications.VARIABLES,
        "kinds": communications.KINDS,
        "errors": {},
    }
    if request.method == "GET":
        return _tab_page(shop, "communication", tabs, **context)
    values = _communication_values()
    try:
        _update(shop, {"communication": values})
    except DomainError as error:
        db.session.rollback()
        errors = {
            name.removeprefix("communication.").replace(".", "-"): messages
            for name, messages in error.fields.items()
        }
        context.update(
            templates=values["templates"],
            notify_user_ids=values["notify_user_ids"],
            forced_copy=values["forced_copy"],
            errors=errors,
        )
        return _tab_page(shop, "communication", tabs, status=422, **context)
    db.session.commit()
    flash(_("The e-mail settings are saved."), "success")
    return redirect(
        url_for("storefront_admin.shop_settings", shop_slug=shop.slug, tab="communication")
    )


def settings_tab(shop: Shop, tab: str, tabs: list[tuple[str, Any]]) -> Any:
    """The Payment, Customer form and Communication tabs (GET shows, POST saves)."""
    if tab == "payment":
        return _payment_tab(shop, tabs)
    if tab == "customer-form":
        return _customer_form_tab(shop, tabs)
    return _communication_tab(shop, tabs)


@blueprint.post("/shops/<shop_slug>/communication/preview")
@shops_required
def communication_preview(shop_slug: str) -> Any:
    """The live preview: a template rendered with sample values, or its error with the line."""
    if shop_services.find_shop(shop_slug) is None:
        abort(404)
    locale = request.form.get("locale", "fr")
    if locale not in communications.LOCALES:
        locale = "fr"
    kind = request.form.get("kind", "confirmation")
    if kind not in communications.KINDS:
        kind = "confirmation"
    default = communications.DEFAULT_TEMPLATES[kind][locale]
    subject = request.form.get("subject", "").strip() or default["subject"]
    body = request.form.get("body", "").strip() or default["body"]
    try:
        with force_locale(locale):
            rendered = communications.render_message(
                subject, body, communications.sample_context(locale)
            )
    except ValidationError as error:
        return jsonify(
            {"error": {"code": error.code, "message": error.message, "fields": error.fields}}
        ), 422
    return jsonify({"subject": rendered.subject, "text": rendered.text, "html": str(rendered.html)})


__all__ = ["TABS", "blueprint", "localized", "settings_tab"]
