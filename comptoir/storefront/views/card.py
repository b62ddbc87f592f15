"""The card payment page of an order, and what the confirmation page asks while Stripe confirms.

Everything here is reached with the order's token, like the confirmation page
(``/<shop>/orders/<token>``): whoever holds the link may pay the order, see where its payment
stands and start another attempt after a decline; nobody else learns the order exists.

- ``…/card``: the Payment Element mounted with the intent's client secret on the organization's
  connected account (Stripe.js handles 3-D Secure), or with simulated payments a link to the
  fake's test card form;
- ``…/card/return``: where Stripe (or the fake) sends the browser back. Its query says nothing we
  trust; the page asks Stripe itself, shows a decline at once and waits for the webhook for a
  success;
- ``…/card/status``: the small JSON the confirmation page polls;
- ``POST …/card/attempts``: "Try again", a new attempt with a new intent.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    url_for,
)
from flask_babel import gettext as _

from comptoir.billing import orders as order_services
from comptoir.billing import stripe_card
from comptoir.billing.models import Method, MoneyState, Order, OrderState
from comptoir.billing.stripe_errors import StripeGatewayError
from comptoir.billing.stripe_gateway import PaymentIntent, current_gateway
from comptoir.platform.db import db
from comptoir.platform.errors import DomainError
from comptoir.platform.extensions import limiter
from comptoir.platform.i18n import select_locale
from comptoir.storefront import carts
from comptoir.storefront.visibility import ShopView, view_shop
from comptoir.tenants.context import (
    current_actor,
    current_role,
    install_organization_url_handling,
)
from comptoir.tenants.permissions import Permission, role_can

logger = logging.getLogger(__name__)

blueprint = Blueprint("storefront_card", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)

# Each attempt creates a PaymentIntent at Stripe: a person retries a few times, a script more.
ATTEMPTS_RATE_LIMIT = "20 per minute"
# How often the confirmation page asks, in milliseconds, and for how long before it stops.
POLL_INTERVAL_MS = 2000
POLL_FOR_MS = 10 * 60 * 1000


def _view(shop_slug: str) -> ShopView:
    view = view_shop(shop_slug)
    if view is None:
        abort(404)
    return view


def _order(view: ShopView, token: str) -> Order:
    order = order_services.find_order_by_token(token)
    if order is None or order.shop_id != view.shop.id:
        abort(404)
    return order


def _staff(view: ShopView) -> bool:
    return view.is_staff and carts.can_manage_carts(current_role())


def _card_order(view: ShopView, token: str) -> Order:
    """An order the caller may pay by card here: chosen so at checkout (staff: any order)."""
    order = _order(view, token)
    if order.checkout_method is not Method.CARD and not _staff(view):
        abort(404)
    return order


def _confirmation_url(view: ShopView, token: str) -> str:
    return url_for("storefront_checkout.confirmation", shop_slug=view.shop.slug, token=token)


def _return_url(view: ShopView, token: str) -> str:
    return url_for(".returned", shop_slug=view.shop.slug, token=token, _external=True)


def _can(view: ShopView) -> dict[str, bool]:
    return {
        "manage_shops": role_can(current_role(), Permission.MANAGE_SHOPS),
        "manage_catalog": role_can(current_role(), Permission.MANAGE_CATALOG),
    }


def _page(
    view: ShopView,
    order: Order,
    token: str,
    *,
    intent: PaymentIntent | None = None,
    message: str = "",
    status: int = 200,
) -> Any:
    gateway = current_gateway()
    card = stripe_card.card_status(order)
    return_url = _return_url(view, token)
    hosted_url = None
    if intent is not None and gateway.simulated:
        hosted_url = gateway.hosted_test_payment_url(intent, return_url=return_url)
    return (
        render_template(
            "storefront/card/pay.html",
            view=view,
            shop=view.shop,
            order=order,
            token=token,
            card=card,
            intent=intent,
            simulated=gateway.simulated,
            publishable_key=gateway.publishable_key,
            hosted_url=hosted_url,
            return_url=return_url,
            confirmation_url=_confirmation_url(view, token),
            message=message,
            staff=_staff(view),
            can=_can(view),
            stripe_locale="fr-CA" if select_locale() == "fr" else "en",
        ),
        status,
    )


@blueprint.get("/<shop_slug>/orders/<token>/card")
def pay(shop_slug: str, token: str) -> Any:
    view = _view(shop_slug)
    order = _card_order(view, token)
    if order.state is not OrderState.AWAITING_PAYMENT:
        return redirect(_confirmation_url(view, token), code=303)
    payment = stripe_card.latest_card_payment(order)
    if payment is None or payment.state is not MoneyState.PROCESSING:
        # Nothing open: the page explains and offers to start an attempt.
        db.session.commit()
        return _page(view, order, token)
    try:
        intent = stripe_card.note_intent_outcome(
            organization=g.organization, payment=payment, gateway=current_gateway()
        )
    except StripeGatewayError as error:
        db.session.rollback()
        logger.warning("card page could not read payment %s: %s", payment.id, error)
        message = _("Card payments are unavailable right now. Try again in a moment.")
        return _page(view, _card_order(view, token), token, message=message, status=503)
    db.session.commit()
    if intent is None or payment.state is not MoneyState.PROCESSING or payment.review_reason:
        return _page(view, order, token)
    if intent.status not in stripe_card.OPEN_STATUSES:
        # Paid or being paid: the confirmation page follows it until Stripe confirms.
        return redirect(_confirmation_url(view, token), code=303)
    return _page(view, order, token, intent=intent)


@blueprint.get("/<shop_slug>/orders/<token>/card/return")
def returned(shop_slug: str, token: str) -> Any:
    view = _view(shop_slug)
    order = _order(view, token)
    payment = stripe_card.latest_card_payment(order)
    if payment is not None and payment.state is MoneyState.PROCESSING:
        # The query (payment_intent, redirect_status) could say anything: Stripe is asked
        # instead. A decline is shown at once; a success still waits for the webhook or the
        # reconciliation sweep, the only ways an order becomes paid.
        try:
            stripe_card.note_intent_outcome(
                organization=g.organization, payment=payment, gateway=current_gateway()
            )
        except StripeGatewayError as error:
            db.session.rollback()
            logger.warning("card return could not read payment %s: %s", payment.id, error)
        else:
            db.session.commit()
    return redirect(_confirmation_url(view, token), code=303)


@blueprint.get("/<shop_slug>/orders/<token>/card/status")
def status(shop_slug: str, token: str) -> Response:
    view = _view(shop_slug)
    order = _order(view, token)
    response = jsonify(stripe_card.card_status(order).as_json())
    db.session.commit()
    return response


@blueprint.post("/<shop_slug>/orders/<token>/card/attempts")
@limiter.limit(ATTEMPTS_RATE_LIMIT)
def retry(shop_slug: str, token: str) -> Any:
    view = _view(shop_slug)
    order = _card_order(view, token)
    try:
        stripe_card.start_card_attempt(
            organization=g.organization,
            order=order,
            actor=current_actor(),
            gateway=current_gateway(),
        )
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(_confirmation_url(view, token), code=303)
    db.session.commit()
    return redirect(url_for(".pay", shop_slug=view.shop.slug, token=token), code=303)


@blueprint.app_template_global("card_payment_status")
def card_payment_status(order: Order) -> stripe_card.CardStatus | None:
    """For the confirmation page: the order's card payment, when it has one to follow."""
    status = stripe_card.card_status(order)
    return None if status.phase == stripe_card.Phase.NONE else status


@blueprint.app_template_global("card_polling")
def card_polling() -> dict[str, int]:
    return {"interval": POLL_INTERVAL_MS, "duration": POLL_FOR_MS}


@blueprint.after_request
def _private(response: Response) -> Response:
    # Client secrets and order links are personal: no shared or back-button cache keeps them.
    response.headers["Cache-Control"] = "private, no-store"
    return response
