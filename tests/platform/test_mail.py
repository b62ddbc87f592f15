"""E-mail: SMTP against a real server, both languages, the sandbox, the dev mailbox."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import ValidationError
from comptoir.platform.mail import (
    MailMessage,
    deliver,
    queue_mail,
    render_mail,
    render_tenant_template,
)
from comptoir.platform.outbox import OutboxMessage
from tests.conftest import run_jobs
from tests.platform.smtp import SMTPServer, mail_app


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp_app(
    app: Flask,
    database_url: str,
    redis_url: str,
    smtp_server: SMTPServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Flask:
    return mail_app(
        database_url,
        redis_url,
        tmp_path_factory.mktemp("mail"),
        mail_url=smtp_server.url,
        limits_url=redis_url,
    )


@pytest.fixture(autouse=True)
def _empty_mailbox(smtp_server: SMTPServer) -> None:
    smtp_server.clear()


def send(smtp_app: Flask, redis_url: str, smtp_server: SMTPServer, **mail: object) -> EmailMessage:
    with smtp_app.app_context():
        queue_mail(**mail)  # type: ignore[arg-type]
        db.session.commit()
    assert run_jobs(smtp_app, redis_url) == 1
    received = smtp_server.wait_for(1)
    assert len(received) == 1
    return received[0].message


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())


# --------------------------------------------------------------------------- SMTP


def test_smtp_sends_text_and_html_parts_with_cc_and_attachment(
    smtp_app: Flask, redis_url: str, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(b"%PDF-1.4 fake invoice\n")
    message = send(
        smtp_app,
        redis_url,
        smtp_server,
        to="ana@example.org",
        cc=["coach@example.org"],
        template="receipt",
        context={"name": "Ana <b>", "what": "swimming lessons"},
        locale="en",
        attachments=[
            {"filename": "invoice.pdf", "content_type": "application/pdf", "path": str(invoice)}
        ],
    )
    envelope = smtp_server.received[0]
    assert sorted(envelope.recipients) == ["ana@example.org", "coach@example.org"]
    assert message["To"] == "ana@example.org"
    assert message["Cc"] == "coach@example.org"
    assert message["Subject"] == "Your receipt for swimming lessons"
    assert message["Content-Language"] == "en"
    assert message["Date"]
    assert message["Message-ID"]
    assert message.get_content_type() == "multipart/mixed"

    text, html = parts(message)
    # The text part is not HTML: no escaping there; the HTML part escapes what it is given.
    assert "Hello Ana <b>," in text
    assert "template=receipt.txt lang=en" in text
    assert "Hello Ana &lt;b&gt;," in html
    assert "<b>" not in html
    assert "template=receipt.html" in html
    assert '<html lang="en">' in html

    attachments = list(message.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["invoice.pdf"]
    assert attachments[0].get_content_type() == "application/pdf"
    assert attachments[0].get_content() == b"%PDF-1.4 fake invoice\n"

    with smtp_app.app_context():
        stored = db.session.execute(sa.select(MailMessage)).scalar_one()
        assert stored.transport == "smtp"
        assert stored.sent_at is not None
        assert stored.message_id == message["Message-ID"]


def test_french_mail_uses_the_french_template_and_says_so(
    smtp_app: Flask, redis_url: str, smtp_server: SMTPServer
) -> None:
    message = send(
        smtp_app,
        redis_url,
        smtp_server,
        to="ana@example.org",
        template="receipt",
        context={"name": "Ana", "what": "natation"},
        locale="fr",
    )
    assert message["Content-Language"] == "fr"
    text, html = parts(message)
    # The French HTML template wins; the text part falls back to the shared template, in French.
    assert "template=receipt.fr.html" in html
    assert '<html lang="fr">' in html
    assert "template=receipt.txt lang=fr" in text


def test_render_mail_runs_in_the_recipients_language(smtp_app: Flask) -> None:
    from flask_babel import get_locale

    with smtp_app.test_request_context("/?lang=en"):
        _subject, _text, french_html = render_mail("receipt", {"name": "A", "what": "B"}, "fr")
        _subject, _text, english_html = render_mail("receipt", {"name": "A", "what": "B"}, "en")
        # The request's own language is back once the mail is rendered.
        assert str(get_locale()) == "en"
    assert "template=receipt.fr.html" in french_html
    assert "template=receipt.html" in english_html


def test_queue_mail_refuses_header_injection(smtp_app: Flask) -> None:
    with smtp_app.app_context():
        with pytest.raises(ValueError, match="e-mail address"):
            queue_mail(
                to="ana@example.org\r\nBcc: everyone@example.org",
                template="receipt",
                context={"name": "A", "what": "B"},
                locale="en",
            )
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0


def test_unknown_transport_fails_the_job_without_marking_it_sent(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    broken = mail_app(
        database_url, redis_url, tmp_path, mail_url="carrier-pigeon://loft", limits_url=redis_url
    )
    with broken.app_context():
        mail = queue_mail(
            to="a@example.org", template="receipt", context={"name": "A", "what": "B"}, locale="en"
        )
        db.session.commit()
        with pytest.raises(ValueError, match="carrier-pigeon"):
            deliver(mail.id)
        db.session.rollback()
        stored = db.session.get(MailMessage, mail.id)
        assert stored is not None
        assert stored.sent_at is None
        db.engine.dispose()


# --------------------------------------------------------------------------- tenant templates


def test_tenant_template_renders_and_escapes(app: Flask) -> None:
    with app.app_context():
        html = render_tenant_template("<p>Hello {{ name }}</p>", {"name": "<script>x</script>"})
        text = render_tenant_template("Hello {{ name }}", {"name": "<b>"}, html=False)
    assert html == "<p>Hello &lt;script&gt;x&lt;/script&gt;</p>"
    assert text == "Hello <b>"


def test_tenant_template_syntax_error_names_the_line(app: Flask) -> None:
    source = "Hello {{ name }},\nyour order:\n{% if order %}\n{{ order.total }\n"
    with app.app_context(), pytest.raises(ValidationError) as caught:
        render_tenant_template(source, {"name": "Ana", "order": None})
    assert "Line 4" in caught.value.message
    assert caught.value.fields["template"] == [caught.value.message]


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_tenant_template_sandbox_refuses_python_internals(app: Flask, source: str) -> None:
    with app.app_context(), pytest.raises(ValidationError) as caught:
        render_tenant_template(source, {"name": "Ana"})
    assert "not allowed" in caught.value.message or "unknown" in caught.value.message
    assert "Line 1" in caught.value.message


def test_tenant_template_refuses_mutation_and_huge_output(app: Flask) -> None:
    with app.app_context():
        with pytest.raises(ValidationError, match="not allowed"):
            render_tenant_template("{{ items.append(1) }}", {"items": []})
        with pytest.raises(ValidationError, match="not allowed"):
            render_tenant_template("{{ 'x' * 100000000 }}", {})
        with pytest.raises(ValidationError, match="not allowed"):
            render_tenant_template("{{ 9 ** 9999999 }}", {})


def test_tenant_template_unknown_variable_is_a_clear_error(app: Flask) -> None:
    with app.app_context(), pytest.raises(ValidationError) as caught:
        render_tenant_template("Hi\n{{ customer.first_name }}", {})
    assert "Line 2" in caught.value.message
    assert "customer" in caught.value.message


# --------------------------------------------------------------------------- dev mailbox


def delivered(subject: str, html: str, *, to: str = "ana@example.org") -> int:
    mail = MailMessage(
        to_address=to,
        cc_addresses=[],
        subject=subject,
        text_body=f"Text of {subject}",
        html_body=html,
        locale="fr",
        template="test",
        attachments=[],
    )
    db.session.add(mail)
    db.session.flush()
    assert deliver(mail.id)
    db.session.commit()
    return mail.id


def test_dev_mailbox_lists_delivered_mail_newest_first(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        first = delivered("First subject", "<p>one</p>")
        second = delivered("Second subject", "<p>two</p>")
        db.session.add(
            MailMessage(
                to_address="later@example.org",
                subject="Not sent yet",
                text_body="",
                html_body="",
                locale="en",
                template="test",
                created_at=utcnow(),
            )
        )
        db.session.commit()
    page = client.get("/_dev/mail/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.index("Second subject") < html.index("First subject")
    assert "Not sent yet" not in html
    assert f'href="/_dev/mail/{first}"' in html
    assert f'href="/_dev/mail/{second}"' in html


def test_dev_mailbox_shows_a_message_and_its_html_part_safely(
    app: Flask, client: FlaskClient
) -> None:
    hostile = '<p>Hi</p><script>alert("x")</script><img src=x onerror="alert(1)">'
    with app.app_context():
        mail_id = delivered("Hostile subject <i>", hostile, to="bob@example.org")
    page = client.get(f"/_dev/mail/{mail_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Hostile subject &lt;i&gt;" in html
    assert "bob@example.org" in html
    assert "Text of Hostile subject" in html
    # The HTML part appears only escaped on the page, and rendered in a sandboxed frame.
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert f'<iframe class="mail-preview" sandbox src="/_dev/mail/{mail_id}/html"' in html

    frame = client.get(f"/_dev/mail/{mail_id}/html")
    assert frame.status_code == 200
    assert frame.mimetype == "text/html"
    assert frame.get_data(as_text=True) == hostile
    policy = frame.headers["Content-Security-Policy"]
    assert "sandbox" in policy
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'self'" in policy
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    # The site-wide policy still applies to every other page.
    assert "sandbox" not in page.headers["Content-Security-Policy"]


def test_dev_mailbox_answers_404_for_unknown_or_unsent_mail(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        pending = MailMessage(
            to_address="a@example.org",
            subject="Pending",
            text_body="",
            html_body="<p>x</p>",
            locale="en",
            template="test",
        )
        db.session.add(pending)
        db.session.commit()
        pending_id = pending.id
    assert client.get(f"/_dev/mail/{pending_id}").status_code == 404
    assert client.get(f"/_dev/mail/{pending_id}/html").status_code == 404
    assert client.get("/_dev/mail/999999").status_code == 404
