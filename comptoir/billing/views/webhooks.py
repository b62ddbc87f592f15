"""``POST /webhooks/stripe``: the one Connect endpoint every organization's events arrive at.

The view does the least it can: verify the signature on the raw body, store the event by id and
answer, so Stripe's delivery is fast and a burst is absorbed; a job does the work.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from comptoir.billing import stripe_events
from comptoir.billing.stripe_errors import WebhookSignatureError
from comptoir.billing.stripe_gateway import current_gateway
from comptoir.platform.db import db
from comptoir.platform.extensions import csrf, limiter

blueprint = Blueprint("billing_webhooks", __name__)

# Stripe sends at most a few hundred kilobytes; anything larger is not Stripe.
MAX_PAYLOAD = 512 * 1024


@blueprint.post("/webhooks/stripe")
@csrf.exempt
@limiter.exempt
def stripe_webhook() -> Any:
    if (request.content_length or 0) > MAX_PAYLOAD:
        return _refused("payload_too_large", "The payload is too large.", 413)
    payload = request.get_data(cache=False, as_text=False)
    signature = request.headers.get("Stripe-Signature", "")
    try:
        created = stripe_events.receive_webhook(
            payload=payload, signature=signature, gateway=current_gateway()
        )
    except WebhookSignatureError:
        db.session.rollback()
        return _refused("invalid_signature", "The signature does not match this payload.", 400)
    db.session.commit()
    return jsonify(received=True, duplicate=not created)


def _refused(code: str, message: str, status: int) -> Any:
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    return response
