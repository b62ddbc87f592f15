"""E-mail: rendered in Jinja's sandbox, stored, and sent by a job through the outbox.

:func:`queue_mail` renders the subject, text and HTML parts now (in the recipient's language),
stores them as a :class:`MailMessage` and owes a ``mail.send`` job in the same transaction: an
e-mail exists only if the change that caused it commits. The job (:func:`deliver`) hands the
message to the transport named by ``COMPTOIR_MAIL_URL``:

- ``smtp://[user:password@]host[:port][?starttls=1&timeout=30]`` and
  ``smtps://[user:password@]host[:port]`` for real mail;
- ``dev://`` for the development mailbox page (``/_dev/mail``): the message is only marked sent.

Templates live in any templates folder under ``mail/``: ``<name>.subject.txt``, ``<name>.txt``
and ``<name>.html``. A language-specific file (``<name>.fr.html``) wins over the shared one for
that language; the shared ones translate their strings with ``{{ _("...") }}``. Every template
receives ``locale`` besides its own context.

Tenant-authored templates (shop e-mails, payment instructions) go through
:func:`render_tenant_template`: the immutable sandbox, and errors a person can fix.
"""

from __future__ import annotations

import logging
import mimetypes
import operator
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from jinja2 import (
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy.orm import Mapped, mapped_column

from comptoir.platform import outbox
from comptoir.platform.db import BigId, IdMixin, JsonColumn, Model, UtcDateTime, db, utcnow
from comptoir.platform.errors import ValidationError
from comptoir.platform.settings import current_settings
from comptoir.platform.tenancy import current_organization_id, unscoped

logger = logging.getLogger(__name__)

MAIL_JOB = "mail.send"
DEV_TRANSPORT = "dev"


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
    # [{"filename", "content_type", "path"}]: files kept by the domain that produced them; a
    # relative path is relative to the instance folder.
    attachments: Mapped[list[dict[str, str]]] = mapped_column(
        JsonColumn, nullable=False, default=list
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    transport: Mapped[str] = mapped_column(sa.String(20), default="", nullable=False)
    message_id: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)


# --------------------------------------------------------------------------- the sandbox

# Limits that keep a template from exhausting the worker (the sandbox already caps range()).
MAX_POWER_EXPONENT = 100
MAX_REPEAT_LENGTH = 100_000


class _GuardedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, immutable (no ``list.append``), and without giant ``**`` or ``*`` results."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**" and isinstance(right, int | float) and right > MAX_POWER_EXPONENT:
            message = "exponent too large"
            raise SecurityError(message)
        if operator_name == "*":
            for sequence, count in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(count, int)
                    and len(sequence) * count > MAX_REPEAT_LENGTH
                ):
                    message = "repeated text too long"
                    raise SecurityError(message)
            return operator.mul(left, right)
        return super().call_binop(context, operator_name, left, right)


def sandboxed_environment(loader: Any = None, *, autoescape: bool = True) -> _GuardedSandbox:
    """The Jinja environment for mail and tenant-authored text: no Python internals reachable."""
    environment = _GuardedSandbox(
        loader=loader,
        autoescape=select_autoescape(default_for_string=autoescape, default=autoescape),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=True,
    )
    from flask_babel import gettext, ngettext

    environment.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    return environment


_ENVIRONMENTS_EXTENSION = "comptoir_mail_environments"


def _file_environment(*, html: bool) -> _GuardedSandbox:
    # One pair per app (compiled templates are cached); the app's loader finds ``mail/<name>``
    # in every domain's templates folder.
    environments: dict[bool, _GuardedSandbox] = current_app.extensions.setdefault(
        _ENVIRONMENTS_EXTENSION, {}
    )
    if html not in environments:
        environments[html] = sandboxed_environment(current_app.jinja_env.loader, autoescape=html)
    return environments[html]


def _template_names(template: str, locale: str, suffix: str) -> list[str]:
    return [f"mail/{template}.{locale}.{suffix}", f"mail/{template}.{suffix}"]


def render_mail(template: str, context: dict[str, Any], locale: str) -> tuple[str, str, str]:
    """Render ``<template>.subject.txt``, ``.txt`` and ``.html`` in ``locale``."""
    values = {"locale": locale, **context}
    with force_locale(locale):
        text_env = _file_environment(html=False)
        html_env = _file_environment(html=True)
        subject = text_env.select_template(_template_names(template, locale, "subject.txt"))
        text = text_env.select_template(_template_names(template, locale, "txt"))
        html = html_env.select_template(_template_names(template, locale, "html"))
        subject_text = subject.render(values)
        text_body = text.render(values)
        html_body = html.render(values)
    return " ".join(subject_text.split()), text_body, html_body


def _template_line(traceback: TracebackType | None) -> int | None:
    """The template line a rendering error happened on (Jinja rewrites tracebacks to it)."""
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _template_error(problem: str, line: int | None) -> ValidationError:
    if line is not None:
        message = _("Line %(line)d of the template: %(problem)s", line=line, problem=problem)
    else:
        message = _("The template cannot be used: %(problem)s", problem=problem)
    return ValidationError(message, fields={"template": [message]})


def render_tenant_template(source: str, context: dict[str, Any], *, html: bool = True) -> str:
    """Render text an organization wrote, in the sandbox; mistakes become a ValidationError.

    The error names the line and the problem (syntax, unknown variable, forbidden access), for a
    form to show beside the template field.
    """
    environment = sandboxed_environment(autoescape=html)
    try:
        template = environment.from_string(source)
    except TemplateSyntaxError as error:
        raise _template_error(error.message or _("syntax error"), error.lineno) from error
    try:
        return template.render(context)
    except SecurityError as error:
        problem = _("this is not allowed in a template (%(detail)s)", detail=str(error))
        raise _template_error(problem, _template_line(error.__traceback__)) from error
    except UndefinedError as error:
        problem = _("unknown variable or attribute (%(detail)s)", detail=str(error))
        raise _template_error(problem, _template_line(error.__traceback__)) from error
    except TemplateError as error:
        raise _template_error(str(error), _template_line(error.__traceback__)) from error
    except (TypeError, ValueError, ArithmeticError, LookupError) as error:
        # Mistakes in the template's own expressions ({{ 1 / 0 }}, {{ "a" + 1 }}).
        raise _template_error(str(error), _template_line(error.__traceback__)) from error


# --------------------------------------------------------------------------- queueing


def _check_address(address: str) -> str:
    address = address.strip()
    if not address or "@" not in address or any(c in address for c in "\r\n,;"):
        message = f"not a single e-mail address: {address!r}"
        raise ValueError(message)
    return address


def queue_mail(
    *,
    to: str,
    template: str,
    context: dict[str, Any],
    locale: str,
    cc: list[str] | None = None,
    attachments: list[dict[str, str]] | None = None,
) -> MailMessage:
    """Store an e-mail and owe its sending, in the current transaction.

    Nothing leaves before the transaction commits; a rollback leaves no trace.
    """
    subject, text_body, html_body = render_mail(template, context, locale)
    for attachment in attachments or []:
        if not attachment.get("path") or not attachment.get("filename"):
            problem = "an attachment needs a filename and a path"
            raise ValueError(problem)
    message = MailMessage(
        organization_id=current_organization_id(),
        to_address=_check_address(to),
        cc_addresses=[_check_address(address) for address in cc or []],
        subject=subject[:300],
        text_body=text_body,
        html_body=html_body,
        locale=locale,
        template=template,
        attachments=attachments or [],
    )
    db.session.add(message)
    db.session.flush()
    outbox.enqueue(MAIL_JOB, queue=outbox.Queue.HIGH, mail_id=message.id)
    return message


# --------------------------------------------------------------------------- delivery


def _attachment_path(raw: str) -> Path:
    path = Path(raw)
    if not path.is_absolute():
        path = current_settings().instance_path / path
    return path


def build_email(message: MailMessage, sender: str) -> EmailMessage:
    """The MIME message: text and HTML alternatives, then attachments."""
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to_address
    if message.cc_addresses:
        email["Cc"] = ", ".join(message.cc_addresses)
    email["Subject"] = message.subject
    email["Date"] = format_datetime(message.sent_at or utcnow())
    email["Message-ID"] = message.message_id or make_msgid(domain="comptoir")
    email.set_content(message.text_body)
    email.add_alternative(message.html_body, subtype="html")
    for attachment in message.attachments:
        data = _attachment_path(attachment["path"]).read_bytes()
        content_type = (
            attachment.get("content_type")
            or mimetypes.guess_type(attachment["filename"])[0]
            or "application/octet-stream"
        )
        maintype, _slash, subtype = content_type.partition("/")
        email.add_attachment(
            data, maintype=maintype, subtype=subtype, filename=attachment["filename"]
        )
    # Last: set_content() and the multipart conversions move or drop Content-* headers.
    email["Content-Language"] = message.locale
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
    """Send one stored e-mail unless already sent. Runs inside the outbox job's transaction.

    The row lock and ``sent_at`` make a second delivery of the same message a no-op.
    """
    settings = current_settings()
    url = settings.effective_mail_url
    scheme = urlparse(url).scheme
    if scheme not in {"smtp", "smtps", DEV_TRANSPORT}:
        error = f"unknown mail transport {scheme!r} in COMPTOIR_MAIL_URL"
        raise ValueError(error)
    with unscoped():
        message = db.session.execute(
            sa.select(MailMessage)
            .where(MailMessage.id == mail_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if message is None or message.sent_at is not None:
            return False
        if not message.message_id:
            message.message_id = make_msgid(domain="comptoir")
        message.sent_at = utcnow()
        if scheme in {"smtp", "smtps"}:
            _send_smtp(url, build_email(message, settings.mail_from))
        message.transport = scheme
        db.session.flush()
    logger.info("mail %s (%s) sent through %s", mail_id, message.template, scheme)
    return True
