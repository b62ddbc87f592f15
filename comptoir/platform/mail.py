"""E-mail: rendered in Jinja's sandbox, stored, and sent by a job through the outbox.

:func:`queue_mail` renders the subject, text and HTML parts now (in the recipient's language),
stores them as a :class:`MailMessage` and owes a ``mail.send`` job in the same transaction. The job
(:func:`deliver`) hands the message to the transport named by ``COMPTOIR_MAIL_URL``: ``smtp://`` or
``smtps://`` for real mail, ``dev://`` for the development mailbox page (``/_dev/mail``).
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from jinja2 import StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.orm import Mapped, mapped_column

from comptoir.platform import outbox
from comptoir.platform.db import BigId, IdMixin, JsonColumn, Model, UtcDateTime, db, utcnow
from comptoir.platform.settings import current_settings
from comptoir.platform.tenancy import current_organization_id, unscoped


class MailMessage(IdMixin, Model):
    """An e-mail owed or sent. Platform table: some mail (operator resets) has no organization."""

    __tablename__ = "mail_messages"

    organization_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    to_address: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    cc_addresses: Mapped[list[str]] = mapped_column(JsonColumn, nullable=False, default=list)
    subject: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    text_body: Mapped[str] = mapped_column(sa.Text, nullable=False)
    html_body: Mapped[str] = mapped_column(sa.Text, nullable=False)
    locale: Mapped[str] = mapped_column(sa.String(5), nullable=False)
    template: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    # [{"filename", "content_type", "path"}]: files kept by the domain that produced them.
    attachments: Mapped[list[dict[str, str]]] = mapped_column(
        JsonColumn, nullable=False, default=list
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    transport: Mapped[str] = mapped_column(sa.String(20), default="", nullable=False)
    message_id: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)


def sandboxed_environment(loader: Any = None, *, autoescape: bool = True) -> SandboxedEnvironment:
    """The Jinja environment for mail and tenant-authored text: no Python internals reachable."""
    environment = SandboxedEnvironment(
        loader=loader,
        autoescape=select_autoescape(default_for_string=autoescape, default=autoescape),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from flask_babel import gettext, ngettext

    environment.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    return environment


def _file_environment(*, html: bool) -> SandboxedEnvironment:
    # The app's loader finds ``mail/<name>`` in every domain's templates folder.
    return sandboxed_environment(current_app.jinja_env.loader, autoescape=html)


def render_mail(template: str, context: dict[str, Any], locale: str) -> tuple[str, str, str]:
    """Render ``<template>.subject.txt``, ``.txt`` and ``.html`` in ``locale``."""
    with force_locale(locale):
        text_env = _file_environment(html=False)
        html_env = _file_environment(html=True)
        subject = text_env.get_template(f"mail/{template}.subject.txt").render(context).strip()
        text_body = text_env.get_template(f"mail/{template}.txt").render(context)
        html_body = html_env.get_template(f"mail/{template}.html").render(context)
    return " ".join(subject.split()), text_body, html_body


def queue_mail(
    *,
    to: str,
    template: str,
    context: dict[str, Any],
    locale: str,
    cc: list[str] | None = None,
    attachments: list[dict[str, str]] | None = None,
) -> MailMessage:
    """Store an e-mail and owe its sending, in the current transaction."""
    subject, text_body, html_body = render_mail(template, context, locale)
    message = MailMessage(
        organization_id=current_organization_id(),
        to_address=to,
        cc_addresses=cc or [],
        subject=subject,
        text_body=text_body,
        html_body=html_body,
        locale=locale,
        template=template,
        attachments=attachments or [],
    )
    db.session.add(message)
    db.session.flush()
    outbox.enqueue("mail.send", queue=outbox.Queue.HIGH, mail_id=message.id)
    return message


# --------------------------------------------------------------------------- delivery


def build_email(message: MailMessage, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to_address
    if message.cc_addresses:
        email["Cc"] = ", ".join(message.cc_addresses)
    email["Subject"] = message.subject
    email["Message-ID"] = message.message_id or make_msgid(domain="comptoir")
    email["Content-Language"] = message.locale
    email.set_content(message.text_body)
    email.add_alternative(message.html_body, subtype="html")
    for attachment in message.attachments:
        data = Path(attachment["path"]).read_bytes()
        maintype, _, subtype = attachment["content_type"].partition("/")
        email.add_attachment(
            data, maintype=maintype, subtype=subtype, filename=attachment["filename"]
        )
    return email


def _send_smtp(url: str, email: EmailMessage) -> None:
    parsed = urlparse(url)
    options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = parsed.hostname or "localhost"
    timeout = float(options.get("timeout", "30"))
    smtp: smtplib.SMTP
    if parsed.scheme == "smtps":
        smtp = smtplib.SMTP_SSL(
            host, parsed.port or 465, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(host, parsed.port or 25, timeout=timeout)
    with smtp:
        if parsed.scheme == "smtp" and options.get("starttls", "").lower() in {"1", "true", "on"}:
            smtp.starttls(context=ssl.create_default_context())
        if parsed.username:
            smtp.login(unquote(parsed.username), unquote(parsed.password or ""))
        smtp.send_message(email)


def deliver(mail_id: int) -> bool:
    """Send one stored e-mail unless already sent. Runs inside the outbox job's transaction."""
    settings = current_settings()
    url = settings.effective_mail_url
    with unscoped():
        message = db.session.execute(
            sa.select(MailMessage).where(MailMessage.id == mail_id).with_for_update()
        ).scalar_one_or_none()
        if message is None or message.sent_at is not None:
            return False
        if not message.message_id:
            message.message_id = make_msgid(domain="comptoir")
        scheme = urlparse(url).scheme
        if scheme in {"smtp", "smtps"}:
            _send_smtp(url, build_email(message, settings.mail_from))
        elif scheme != "dev":
            error = f"unknown mail transport {scheme!r} in COMPTOIR_MAIL_URL"
            raise ValueError(error)
        message.transport = scheme
        message.sent_at = utcnow()
        db.session.flush()
    return True
