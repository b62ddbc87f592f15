"""The admin portal's Stripe page: connect the organization's account, go through Stripe's
onboarding, see what Stripe still needs, refresh, disconnect.

Under ``/o/<org_slug>/admin``, for roles that may manage Stripe. Leaving for Stripe's onboarding
is a plain link to :func:`onboarding` (a GET that makes a fresh Account Link and redirects),
never a form: the page's Content-Security-Policy keeps form submissions on our own origin, and
Stripe sends expired links back to that same URL.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm

from comptoir.billing import stripe_connect
from comptoir.billing.stripe_connect import ConnectStatus
from comptoir.billing.stripe_errors import GatewayConfigurationError, StripeGatewayError
from comptoir.billing.stripe_gateway import StripeGateway, current_gateway
from comptoir.platform.db import db
from comptoir.platform.errors import ConflictError, DomainError
from comptoir.tenants.context import current_actor, install_organization_url_handling
from comptoir.tenants.guards import staff_required
from comptoir.tenants.navigation import set_endpoint
from comptoir.tenants.permissions import Permission

blueprint = Blueprint("billing_stripe_admin", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)
set_endpoint("stripe", "billing_stripe_admin.index")

stripe_required = staff_required(Permission.MANAGE_STRIPE)


def _not_configured() -> str:
    return _("Payments through Stripe are not configured on this platform. Contact its operators.")


class ActionForm(FlaskForm):
    """Connect, refresh and disconnect carry nothing but their CSRF token."""


def _gateway() -> StripeGateway:
    try:
        return current_gateway()
    except GatewayConfigurationError as error:
        raise ConflictError(_not_configured()) from error


def _to_index() -> Any:
    return redirect(url_for(".index"))


def _refused(error: DomainError | StripeGatewayError) -> Any:
    db.session.rollback()
    message = error.user_message if isinstance(error, StripeGatewayError) else error.message
    flash(message, "error")
    return _to_index()


@blueprint.get("/stripe/")
@stripe_required
def index() -> Any:
    organization = g.organization
    state = stripe_connect.connect_state(organization)
    try:
        gateway: StripeGateway | None = current_gateway()
    except GatewayConfigurationError:
        gateway = None
    account = state.account
    return render_template(
        "billing/stripe/admin.html",
        state=state,
        statuses=ConnectStatus,
        account=account,
        requirements=stripe_connect.requirement_labels(account.requirements_due)
        if account is not None
        else [],
        simulated=gateway.simulated if gateway is not None else False,
        not_configured=None if gateway is not None else _not_configured(),
        form=ActionForm(formdata=None),
    )


@blueprint.post("/stripe/connect")
@stripe_required
def connect() -> Any:
    if not ActionForm().validate_on_submit():
        return _to_index()
    try:
        stripe_connect.connect_account(
            organization=g.organization, actor=current_actor(), gateway=_gateway()
        )
    except (DomainError, StripeGatewayError) as error:
        return _refused(error)
    db.session.commit()
    flash(
        _("Your Stripe account is created. Continue to Stripe to fill in its details."),
        "success",
    )
    return _to_index()


@blueprint.get("/stripe/onboarding")
@stripe_required
def onboarding() -> Any:
    """Off to Stripe's onboarding with a new link (also where Stripe sends expired links)."""
    try:
        link = stripe_connect.onboarding_link(
            organization=g.organization,
            gateway=_gateway(),
            refresh_url=url_for(".onboarding", _external=True),
            return_url=url_for(".onboarding_return", _external=True),
        )
    except (DomainError, StripeGatewayError) as error:
        return _refused(error)
    return redirect(link.url)


@blueprint.get("/stripe/return")
@stripe_required
def onboarding_return() -> Any:
    """Where Stripe sends the owner back, finished or not: ask Stripe how far they got."""
    try:
        row = stripe_connect.refresh_account(organization=g.organization, gateway=_gateway())
    except (DomainError, StripeGatewayError) as error:
        return _refused(error)
    ready = row.charges_enabled
    db.session.commit()
    if ready:
        flash(_("Stripe is connected: card payments can be offered."), "success")
    else:
        flash(_("Stripe still needs some details before card payments are possible."), "error")
    return _to_index()


@blueprint.post("/stripe/refresh")
@stripe_required
def refresh() -> Any:
    if not ActionForm().validate_on_submit():
        return _to_index()
    try:
        stripe_connect.refresh_account(organization=g.organization, gateway=_gateway())
    except (DomainError, StripeGatewayError) as error:
        return _refused(error)
    db.session.commit()
    flash(_("The account's state was read from Stripe again."), "success")
    return _to_index()


@blueprint.route("/stripe/disconnect", methods=["GET", "POST"])
@stripe_required
def disconnect() -> Any:
    organization = g.organization
    account = stripe_connect.connected_account(organization)
    if account is None:
        return _to_index()
    form = ActionForm()
    if form.validate_on_submit():
        try:
            stripe_connect.disconnect(organization=organization, actor=current_actor())
        except DomainError as error:
            return _refused(error)
        db.session.commit()
        flash(_("Stripe is disconnected. Customers can no longer pay by card."), "success")
        return _to_index()
    return render_template(
        "billing/stripe/disconnect.html",
        account=account,
        unsettled=stripe_connect.unsettled_payments(organization),
        form=form,
    )
