"""The development mailbox: what the ``dev://`` transport "sent", newest first.

Registered only outside production (``create_app``). The HTML part is never inserted into this
page: it is shown as escaped source, and rendered by the browser only inside a sandboxed frame
whose own response forbids scripts, forms and same-origin access (``Content-Security-Policy:
sandbox``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, render_template

from comptoir.platform.db import db
from comptoir.platform.mail import DEV_TRANSPORT, MailMessage

blueprint = Blueprint("dev_mail", __name__, template_folder="../templates")

LIST_LIMIT = 200

# For the HTML part only: a sandbox (no scripts, no forms, an opaque origin), no network but
# inline styles and images, and framing by this site's own pages.
HTML_PART_POLICY = {
    "default-src": "'none'",
    "style-src": "'unsafe-inline'",
    "img-src": ["data:", "https:"],
    "frame-ancestors": "'self'",
    "sandbox": "",
}


def _delivered(mail_id: int) -> MailMessage:
    message = db.session.execute(
        sa.select(MailMessage).where(
            MailMessage.id == mail_id,
            MailMessage.transport == DEV_TRANSPORT,
            MailMessage.sent_at.is_not(None),
        )
    ).scalar_one_or_none()
    if message is None:
        abort(404)
    return message


@blueprint.get("/")
def index() -> Any:
    messages = (
        db.session.execute(
            sa.select(MailMessage)
            .where(MailMessage.transport == DEV_TRANSPORT, MailMessage.sent_at.is_not(None))
            .order_by(MailMessage.sent_at.desc(), MailMessage.id.desc())
            .limit(LIST_LIMIT)
        )
        .scalars()
        .all()
    )
    return render_template("dev_mail/index.html", messages=messages)


@blueprint.get("/<int:mail_id>")
def show(mail_id: int) -> Any:
    return render_template("dev_mail/show.html", message=_delivered(mail_id))


@blueprint.get("/<int:mail_id>/html")
def html_part(mail_id: int) -> Any:
    message = _delivered(mail_id)
    response = Response(message.html_body, mimetype="text/html")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# Read by Flask-Talisman for this view only, instead of the site-wide policy.
html_part.talisman_view_options = {  # type: ignore[attr-defined]
    "content_security_policy": HTML_PART_POLICY,
    "frame_options": "SAMEORIGIN",
}
