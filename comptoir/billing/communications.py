"""The shop's e-mails: templates staff edit, the variables they may use, and the messages sent.

Two templates per language, each a subject and a body in plain text with Jinja variables:
``confirmation`` (an order was placed) and ``cancellation`` (an order was cancelled or refunded).
They are rendered in Jinja's sandbox (:func:`comptoir.platform.mail.render_tenant_template`)
with the variables of :data:`VARIABLES` only; a template with a syntax error, an unknown
variable or a reach for Python internals is refused when saved, with its line
(:func:`clean_settings`).

Messages are queued by jobs (``comptoir/jobs/billing.py``) through the outbox, each at most once
(a timestamp on the order or the credit note says it was queued), with the invoice or the credit
note attached, a copy to the shop's forced address when it has one, and a notification to the
staff chosen for each purchase.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from comptoir.billing import invoices
from comptoir.billing.documents import method_label
from comptoir.billing.etransfer import Instructions, order_instructions
from comptoir.billing.models import CreditNote, Invoice, Method, MoneyState, Order, Refund
from comptoir.billing.money import format_day, format_money
from comptoir.billing.orders import figures
from comptoir.platform import audit, mail, outbox
from comptoir.platform.audit import Actor
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import ValidationError
from comptoir.tenants.models import Locale, Membership, Organization, User
from comptoir.tenants.permissions import Permission, ensure

KINDS = ("confirmation", "cancellation")
LOCALES = ("fr", "en")
MAX_SUBJECT = 200
MAX_BODY = 20_000
SHOP_MESSAGE = "shop_message"

VARIABLES: list[tuple[str, Any]] = [
    ("organization_name", _l("the organization's name")),
    ("shop_name", _l("the shop's name")),
    ("customer_first_name", _l("the account owner's first name")),
    ("customer_last_name", _l("the account owner's last name")),
    ("customer_name", _l("the account owner's full name")),
    ("order_code", _l("the order's code, such as C-1042")),
    ("order_date", _l("the day the order was placed")),
    ("total", _l("the order's total, formatted")),
    ("paid", _l("what was paid so far, formatted")),
    ("balance", _l("what is left to pay, formatted")),
    ("payment_method", _l("the payment method chosen at checkout")),
    ("payment_instructions", _l("how to pay when payment is pending (e-Transfer details)")),
    ("lines", _l("the lines: each has name, quantity and total")),
    ("invoice_number", _l("the invoice's number")),
    ("invoice_url", _l("the link to download the invoice")),
    ("credit_note_number", _l("cancellation and refund only: the credit note's number")),
    ("credit_note_url", _l("cancellation and refund only: the link to the credit note")),
    ("refund_amount", _l("cancellation and refund only: the money given back, formatted")),
    ("reason", _l("cancellation and refund only: the reason given")),
    ("cancelled", _l("cancellation and refund only: true when the whole order is cancelled")),
]

DEFAULT_TEMPLATES: dict[str, dict[str, dict[str, str]]] = {
    "confirmation": {
        "fr": {
            "subject": "Confirmation de votre commande {{ order_code }}",
            "body": (
                "Bonjour {{ customer_first_name }},\n\n"
                "Merci pour votre commande {{ order_code }} du {{ order_date }} auprès de "
                "{{ organization_name }}.\n\n"
                "{% for line in lines %}- {{ line.quantity }} \u00d7 {{ line.name }} : "
                "{{ line.total }}\n{% endfor %}\n"
                "Total : {{ total }}\nPayé : {{ paid }}\nSolde : {{ balance }}\n\n"
                "{% if payment_instructions %}{{ payment_instructions }}\n\n{% endif %}"
                "Votre facture {{ invoice_number }} est jointe à ce courriel et en ligne : "
                "{{ invoice_url }}\n\n{{ organization_name }}"
            ),
        },
        "en": {
            "subject": "Your order {{ order_code }} is confirmed",
            "body": (
                "Hello {{ customer_first_name }},\n\n"
                "Thank you for your order {{ order_code }} of {{ order_date }} with "
                "{{ organization_name }}.\n\n"
                "{% for line in lines %}- {{ line.quantity }} \u00d7 {{ line.name }}: "
                "{{ line.total }}\n{% endfor %}\n"
                "Total: {{ total }}\nPaid: {{ paid }}\nBalance: {{ balance }}\n\n"
                "{% if payment_instructions %}{{ payment_instructions }}\n\n{% endif %}"
                "Your invoice {{ invoice_number }} is attached and online: {{ invoice_url }}"
                "\n\n{{ organization_name }}"
            ),
        },
    },
    "cancellation": {
        "fr": {
            "subject": (
                "{% if cancelled %}Annulation{% else %}Remboursement{% endif %} "
                "de la commande {{ order_code }}"
            ),
            "body": (
                "Bonjour {{ customer_first_name }},\n\n"
                "{% if cancelled %}Votre commande {{ order_code }} est annulée."
                "{% else %}Un remboursement a été fait sur votre commande {{ order_code }}."
                "{% endif %}\nMotif : {{ reason }}\n\n"
                "{% if refund_amount %}Montant remboursé : {{ refund_amount }}\n{% endif %}"
                "Note de crédit {{ credit_note_number }} : {{ credit_note_url }}\n\n"
                "{{ organization_name }}"
            ),
        },
        "en": {
            "subject": (
                "{% if cancelled %}Order {{ order_code }} cancelled"
                "{% else %}Refund on order {{ order_code }}{% endif %}"
            ),
            "body": (
                "Hello {{ customer_first_name }},\n\n"
                "{% if cancelled %}Your order {{ order_code }} is cancelled."
                "{% else %}A refund was made on your order {{ order_code }}.{% endif %}\n"
                "Reason: {{ reason }}\n\n"
                "{% if refund_amount %}Amount refunded: {{ refund_amount }}\n{% endif %}"
                "Credit note {{ credit_note_number }}: {{ credit_note_url }}\n\n"
                "{{ organization_name }}"
            ),
        },
    },
}


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class CommunicationSettings:
    """A shop's ``communication`` object, read with the defaults filled in."""

    templates: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    notify_user_ids: tuple[int, ...] = ()
    forced_copy: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CommunicationSettings:
        data = data or {}
        templates: dict[str, dict[str, dict[str, str]]] = {}
        stored = data.get("templates") if isinstance(data.get("templates"), dict) else {}
        for kind in KINDS:
            templates[kind] = {}
            for locale in LOCALES:
                mine = ((stored or {}).get(kind) or {}).get(locale) or {}
                default = DEFAULT_TEMPLATES[kind][locale]
                templates[kind][locale] = {
                    "subject": str(mine.get("subject") or default["subject"]),
                    "body": str(mine.get("body") or default["body"]),
                }
        ids = data.get("notify_user_ids") or []
        return cls(
            templates=templates,
            notify_user_ids=tuple(i for i in ids if isinstance(i, int) and not isinstance(i, bool)),
            forced_copy=str(data.get("forced_copy") or ""),
        )

    def template(self, kind: str, locale: str) -> dict[str, str]:
        return self.templates[kind][locale if locale in LOCALES else "fr"]


def sample_context(locale: str) -> dict[str, Any]:
    """Values every variable takes in the editor's preview and in the check when saving."""
    with force_locale(locale):
        return {
            "organization_name": "Club de natation",
            "shop_name": _("Registrations"),
            "customer_first_name": "Camille",
            "customer_last_name": "Tremblay",
            "customer_name": "Camille Tremblay",
            "order_code": "C-1042",
            "order_date": format_day(utcnow(), locale, "America/Toronto"),
            "total": format_money(11498, "CAD", locale),
            "paid": format_money(0, "CAD", locale),
            "balance": format_money(11498, "CAD", locale),
            "payment_method": _("Interac e-Transfer"),
            "payment_instructions": _(
                "Send an Interac e-Transfer of %(amount)s to %(email)s with the code "
                "%(code)s in the message.",
                amount=format_money(11498, "CAD", locale),
                email="paiements@example.org",
                code="C-1042",
            ),
            "lines": [
                {
                    "name": _("Swimming lessons"),
                    "quantity": 1,
                    "total": format_money(10000, "CAD", locale),
                }
            ],
            "invoice_number": "F-1042",
            "invoice_url": "https://example.org/invoice.pdf",
            "credit_note_number": "AV-1007",
            "credit_note_url": "https://example.org/credit-note.pdf",
            "refund_amount": format_money(11498, "CAD", locale),
            "reason": _("Course cancelled"),
            "cancelled": True,
        }


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: Markup


def _paragraphs(text: str) -> Markup:
    """Plain text as HTML: escaped, paragraphs on blank lines, line breaks kept."""
    blocks = [block for block in text.replace("\r\n", "\n").split("\n\n") if block.strip()]
    return Markup("").join(
        Markup("<p>{}</p>\n").format(
            Markup("<br>\n").join(escape(line) for line in block.split("\n"))
        )
        for block in blocks
    )


def render_message(subject: str, body: str, context: dict[str, Any]) -> RenderedMessage:
    """A subject and body rendered in the sandbox; a mistake is a ValidationError with its line."""
    try:
        subject_text = mail.render_tenant_template(subject, context, html=False)
    except ValidationError as error:
        raise ValidationError(error.message, fields={"subject": [error.message]}) from error
    try:
        text = mail.render_tenant_template(body, context, html=False)
    except ValidationError as error:
        raise ValidationError(error.message, fields={"body": [error.message]}) from error
    return RenderedMessage(
        subject=" ".join(subject_text.split())[:MAX_SUBJECT], text=text, html=_paragraphs(text)
    )


def _check_template(
    errors: dict[str, list[str]], kind: str, locale: str, pair: Any
) -> dict[str, str] | None:
    """One subject and body, checked by rendering them with the sample values.

    Returns what to store (empty strings for the parts equal to the default), or None when the
    pair is refused (its errors added under ``templates.<kind>.<locale>.<part>``).
    """
    where = f"templates.{kind}.{locale}"
    if not isinstance(pair, dict) or set(pair) - {"subject", "body"}:
        errors[where] = [_("Give a subject and a body.")]
        return None
    subject = str(pair.get("subject") or "").strip()
    body = str(pair.get("body") or "").strip()
    default = DEFAULT_TEMPLATES[kind][locale]
    for part, value, limit in (("subject", subject, MAX_SUBJECT), ("body", body, MAX_BODY)):
        if len(value) > limit:
            errors[f"{where}.{part}"] = [_("Use at most %(count)d characters.", count=limit)]
            return None
    # The sample values are in the template's language; a refusal is in the reader's.
    sample = sample_context(locale)
    try:
        render_message(subject or default["subject"], body or default["body"], sample)
    except ValidationError as error:
        for name, messages in error.fields.items():
            errors[f"{where}.{name}"] = messages
        return None
    return {
        "subject": "" if subject == default["subject"] else subject,
        "body": "" if body == default["body"].strip() else body,
    }


def _check_templates(errors: dict[str, list[str]], value: Any) -> dict[str, Any]:
    templates: dict[str, dict[str, dict[str, str]]] = {}
    if not isinstance(value, dict) or set(value) - set(KINDS):
        errors["templates"] = [_("Give the confirmation and cancellation templates.")]
        return templates
    for kind in KINDS:
        per_locale = value.get(kind) or {}
        if not isinstance(per_locale, dict):
            errors[f"templates.{kind}"] = [_("Give an object.")]
            continue
        for locale in LOCALES:
            stored = _check_template(errors, kind, locale, per_locale.get(locale) or {})
            if stored is not None and (stored["subject"] or stored["body"]):
                templates.setdefault(kind, {})[locale] = stored
    return templates


def clean_settings(data: Any, *, staff_user_ids: Iterable[int]) -> dict[str, Any]:
    """Checked ``communication`` object as stored on the shop, or every error at once.

    Templates equal to the defaults are stored empty, so improving a default reaches every shop.
    """
    from comptoir.tenants.services import normalize_email

    if not isinstance(data, dict):
        raise ValidationError(
            _("Give an object."), fields={"communication": [_("Give an object.")]}
        )
    errors: dict[str, list[str]] = {
        name: [_("Unknown field.")]
        for name in sorted(set(data) - {"templates", "notify_user_ids", "forced_copy"})
    }
    templates = _check_templates(errors, data.get("templates") or {})
    staff = set(staff_user_ids)
    notify = data.get("notify_user_ids") or []
    if not isinstance(notify, list) or any(
        not isinstance(i, int) or isinstance(i, bool) or i not in staff for i in notify
    ):
        errors["notify_user_ids"] = [_("Choose staff members of the organization.")]
        notify = []
    forced = str(data.get("forced_copy") or "").strip()
    if forced:
        try:
            forced = normalize_email(forced)
        except ValidationError:
            errors["forced_copy"] = [_("Enter a valid e-mail address.")]
    if errors:
        raise ValidationError(_("Some fields are not valid."), fields=errors)
    return {
        "templates": templates,
        "notify_user_ids": list(dict.fromkeys(notify)),
        "forced_copy": forced,
    }


# --------------------------------------------------------------------------- order context


def _organization(order: Order) -> Organization:
    organization = db.session.get(Organization, order.organization_id)
    assert organization is not None
    return organization


def invoice_url(organization: Organization, invoice: Invoice) -> str:
    from comptoir.tenants.services import absolute_url

    signature = invoices.download_signature("invoice", organization.id, invoice.id)
    return absolute_url(f"/o/{organization.slug}/documents/invoices/{invoice.id}/{signature}.pdf")


def credit_note_url(organization: Organization, note: CreditNote) -> str:
    from comptoir.tenants.services import absolute_url

    signature = invoices.download_signature("credit_note", organization.id, note.id)
    return absolute_url(f"/o/{organization.slug}/documents/credit-notes/{note.id}/{signature}.pdf")


def payment_instructions_text(details: Instructions | None) -> str:
    if details is None:
        return ""
    parts = [
        _(
            "Send an Interac e-Transfer of %(amount)s to %(email)s and write the code "
            "%(code)s in the transfer's message.",
            amount=details.amount,
            email=details.email,
            code=details.order_code,
        )
    ]
    if details.auto_deposit:
        parts.append(_("This address deposits transfers automatically: no security question."))
    elif details.security_question:
        parts.append(
            _(
                "Security question: %(question)s Answer: %(answer)s",
                question=details.security_question,
                answer=details.security_answer,
            )
        )
    if details.text:
        parts.append(details.text)
    return "\n".join(parts)


def order_context(
    order: Order,
    *,
    locale: str,
    shop_name: str = "",
    credit_note: CreditNote | None = None,
) -> dict[str, Any]:
    organization = _organization(order)
    invoice = invoices.invoice_of(order)
    current = figures(order)
    money = lambda amount: format_money(amount, order.currency, locale)  # noqa: E731
    details = None
    if order.checkout_method is Method.ETRANSFER:
        details = order_instructions(
            order, organization_name=organization.name, locale=locale, balance=current.balance
        )
    with force_locale(locale):
        context: dict[str, Any] = {
            "organization_name": organization.name,
            "shop_name": shop_name,
            "customer_first_name": order.customer_first_name,
            "customer_last_name": order.customer_last_name,
            "customer_name": order.customer_name,
            "order_code": order.code,
            "order_date": format_day(order.created_at, locale, organization.timezone),
            "total": money(order.total),
            "paid": money(current.net_paid),
            "balance": money(current.balance),
            "payment_method": method_label(order.checkout_method, locale),
            "payment_instructions": payment_instructions_text(details),
            "lines": [
                {"name": line.name, "quantity": line.quantity, "total": money(line.total)}
                for line in order.lines
            ],
            "invoice_number": invoice.code,
            "invoice_url": invoice_url(organization, invoice),
            "credit_note_number": "",
            "credit_note_url": "",
            "refund_amount": "",
            "reason": "",
            "cancelled": False,
        }
        if credit_note is not None:
            refund = (
                db.session.get(Refund, credit_note.refund_id) if credit_note.refund_id else None
            )
            context.update(
                {
                    "credit_note_number": credit_note.code,
                    "credit_note_url": credit_note_url(organization, credit_note),
                    # A refund the provider could not make is not announced as money back.
                    "refund_amount": money(refund.amount)
                    if refund is not None and refund.state is MoneyState.SUCCEEDED
                    else "",
                    "reason": credit_note.reason,
                    "cancelled": credit_note.kind == "cancellation",
                }
            )
    return context


# --------------------------------------------------------------------------- queueing


def _staff_emails(user_ids: Iterable[int]) -> list[tuple[str, str]]:
    """(address, language) of the chosen users who are still staff of the organization."""
    wanted = list(user_ids)
    if not wanted:
        return []
    rows = db.session.execute(
        sa.select(User.email, User.locale)
        .join(Membership, Membership.user_id == User.id)
        .where(User.id.in_(wanted), User.active.is_(True))
        .order_by(User.id)
    ).all()
    return [(email, (locale or Locale.FR).value) for email, locale in rows]


def _shop_message(
    *,
    to: str,
    kind: str,
    locale: str,
    settings: CommunicationSettings,
    copy: bool,
    context: dict[str, Any],
    attachments: list[dict[str, str]],
) -> mail.MailMessage:
    template = settings.template(kind, locale)
    with force_locale(locale):
        try:
            rendered = render_message(template["subject"], template["body"], context)
        except ValidationError:
            # Checked when saved; should a variable vanish later, the default still goes out.
            default = DEFAULT_TEMPLATES[kind][locale]
            rendered = render_message(default["subject"], default["body"], context)
    return mail.queue_mail(
        to=to,
        template=SHOP_MESSAGE,
        context={
            "subject": rendered.subject,
            "body_text": rendered.text,
            "body_html": rendered.html,
            "organization_name": context["organization_name"],
        },
        locale=locale,
        cc=[settings.forced_copy] if copy and settings.forced_copy else None,
        attachments=attachments,
    )


def queue_order_messages(
    order: Order,
    *,
    settings: CommunicationSettings,
    shop_name: str = "",
) -> bool:
    """The customer's confirmation (invoice attached) and the staff notices, once per order.

    A counter sale has no customer address: the forced copy alone receives the confirmation.
    Returns True when this call queued them (False: done before).
    """
    order = db.session.execute(
        sa.select(Order)
        .where(Order.id == order.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if order.confirmation_queued_at is not None:
        return False
    order.confirmation_queued_at = utcnow()
    to = order.customer_email or settings.forced_copy
    if to:
        invoice = invoices.build_invoice_pdf(invoices.invoice_of(order).id)
        assert invoice is not None
        context = order_context(order, locale=order.locale, shop_name=shop_name)
        _shop_message(
            to=to,
            kind="confirmation",
            locale=order.locale,
            settings=settings,
            copy=to != settings.forced_copy,
            context=context,
            attachments=[invoices.attachment(invoice.pdf_key, invoices.pdf_filename(invoice))],
        )
    queue_staff_notifications(order, settings=settings, shop_name=shop_name)
    db.session.flush()
    return True


def queue_staff_notifications(
    order: Order, *, settings: CommunicationSettings, shop_name: str = ""
) -> int:
    """A short notice of the purchase to each chosen staff member, in their language."""
    sent = 0
    for address, locale in _staff_emails(settings.notify_user_ids):
        context = order_context(order, locale=locale, shop_name=shop_name)
        context["counter_sale"] = order.counter_sale
        context["placed_by"] = order.placed_by_label
        mail.queue_mail(to=address, template="order_notification", context=context, locale=locale)
        sent += 1
    return sent


def queue_credit_note_notice(
    note: CreditNote, *, settings: CommunicationSettings, shop_name: str = ""
) -> bool:
    """The cancellation or refund e-mail with the credit note attached, once per credit note."""
    note = db.session.execute(
        sa.select(CreditNote)
        .where(CreditNote.id == note.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if note.mail_queued_at is not None:
        return False
    order = db.session.get(Order, note.order_id)
    assert order is not None
    note.mail_queued_at = utcnow()
    to = order.customer_email or settings.forced_copy
    if not to:
        return False
    built = invoices.build_credit_note_pdf(note.id)
    assert built is not None
    context = order_context(order, locale=order.locale, shop_name=shop_name, credit_note=note)
    _shop_message(
        to=to,
        kind="cancellation",
        locale=order.locale,
        settings=settings,
        copy=to != settings.forced_copy,
        context=context,
        attachments=[invoices.attachment(built.pdf_key, invoices.pdf_filename(built))],
    )
    db.session.flush()
    return True


def queue_etransfer_reminder(order: Order, *, shop_name: str = "") -> bool:
    """Remind the customer of an unpaid e-Transfer order, once."""
    if order.reminded_at is not None:
        return False
    order.reminded_at = utcnow()
    if not order.customer_email:
        return False
    context = order_context(order, locale=order.locale, shop_name=shop_name)
    context["pay_by"] = format_day(order.expires_at, order.locale, _organization(order).timezone)
    mail.queue_mail(
        to=order.customer_email, template="etransfer_reminder", context=context, locale=order.locale
    )
    db.session.flush()
    return True


SEND_INVOICE_JOB = "billing.send_invoice"


def _address(to: Any) -> str:
    from comptoir.tenants.services import normalize_email

    try:
        return normalize_email(str(to or ""))
    except ValidationError as error:
        raise ValidationError(error.message, fields={"email": [error.message]}) from error


def request_invoice_mail(
    *, organization: Organization, actor: Actor, order: Order, to: Any, locale: str | None = None
) -> str:
    """Staff e-mail the invoice to an address they typed; a job builds the PDF and sends it."""
    ensure(actor.role, Permission.SELL)
    address = _address(to)
    chosen = locale if locale in LOCALES else order.locale
    outbox.enqueue(SEND_INVOICE_JOB, order_id=order.id, to=address, locale=chosen)
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="invoice.mail_requested",
        target=order,
        after={"to": address, "locale": chosen, "order_number": order.number},
    )
    return address


def queue_invoice(order: Order, *, to: str, locale: str) -> mail.MailMessage:
    """The invoice e-mail with its PDF attached (run by the job)."""
    invoice = invoices.build_invoice_pdf(invoices.invoice_of(order).id)
    assert invoice is not None
    return mail.queue_mail(
        to=_address(to),
        template="invoice",
        context=order_context(order, locale=locale),
        locale=locale,
        attachments=[invoices.attachment(invoice.pdf_key, invoices.pdf_filename(invoice))],
    )
