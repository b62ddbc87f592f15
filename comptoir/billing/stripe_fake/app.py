"""The fake's WSGI application: Stripe's HTTP surface, a few admin switches, and the browser pages
Stripe would host (onboarding, 3-D Secure, a test card form).

``/v1/…`` behaves like Stripe: form-encoded bodies, ``Authorization: Bearer sk_test_…``,
``Stripe-Account`` for connected accounts, ``Idempotency-Key`` on POSTs, JSON answers and
Stripe's error shape. ``/_fake/…`` is the fake's own: admin switches (same key required) and the
pages a browser visits.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from comptoir.billing.stripe_fake import accounts, charges, lists, payments, refunds, terminal
from comptoir.billing.stripe_fake import params as p
from comptoir.billing.stripe_fake.cards import card_for_number
from comptoir.billing.stripe_fake.errors import StripeFakeError
from comptoir.billing.stripe_fake.state import (
    FakeStripe,
    SavedResponse,
    fingerprint,
    random_id,
)
from comptoir.billing.stripe_fake.webhooks import DeliveryMode

Handler = Callable[..., Mapping[str, Any]]

API_HANDLERS: dict[str, Handler] = {
    "create_account": accounts.create_account,
    "list_accounts": lists.listing("account", "/v1/accounts"),
    "retrieve_account": accounts.retrieve_account,
    "delete_account": accounts.delete_account,
    "create_account_link": accounts.create_account_link,
    "create_payment_intent": payments.create_payment_intent,
    "list_payment_intents": lists.listing("payment_intent", "/v1/payment_intents"),
    "retrieve_payment_intent": payments.retrieve_payment_intent,
    "confirm_payment_intent": payments.confirm_payment_intent,
    "capture_payment_intent": payments.capture_payment_intent,
    "cancel_payment_intent": payments.cancel_payment_intent,
    "list_charges": lists.listing("charge", "/v1/charges", filters=("payment_intent",)),
    "retrieve_charge": charges.retrieve_charge,
    "create_refund": refunds.create_refund,
    "list_refunds": lists.listing("refund", "/v1/refunds", filters=("payment_intent", "charge")),
    "retrieve_refund": refunds.retrieve_refund,
    "create_location": terminal.create_location,
    "list_locations": lists.listing("terminal.location", "/v1/terminal/locations"),
    "retrieve_location": terminal.retrieve_location,
    "delete_location": terminal.delete_location,
    "register_reader": terminal.register_reader,
    "list_readers": lists.listing(
        "terminal.reader", "/v1/terminal/readers", filters=("location", "status", "device_type")
    ),
    "retrieve_reader": terminal.retrieve_reader,
    "update_reader": terminal.update_reader,
    "delete_reader": terminal.delete_reader,
    "process_payment_intent": terminal.process_payment_intent,
    "refund_payment": terminal.refund_payment,
    "cancel_action": terminal.cancel_action,
    "present_payment_method": terminal.present_payment_method,
    "list_events": lists.list_events,
    "retrieve_event": lists.retrieve_event,
}

URLS = Map(
    [
        Rule("/v1/accounts", methods=["POST"], endpoint="create_account"),
        Rule("/v1/accounts", methods=["GET"], endpoint="list_accounts"),
        Rule("/v1/account", methods=["GET"], endpoint="retrieve_account"),
        Rule("/v1/accounts/<account_id>", methods=["GET"], endpoint="retrieve_account"),
        Rule("/v1/accounts/<account_id>", methods=["DELETE"], endpoint="delete_account"),
        Rule("/v1/account_links", methods=["POST"], endpoint="create_account_link"),
        Rule("/v1/payment_intents", methods=["POST"], endpoint="create_payment_intent"),
        Rule("/v1/payment_intents", methods=["GET"], endpoint="list_payment_intents"),
        Rule(
            "/v1/payment_intents/<intent_id>", methods=["GET"], endpoint="retrieve_payment_intent"
        ),
        Rule(
            "/v1/payment_intents/<intent_id>/confirm",
            methods=["POST"],
            endpoint="confirm_payment_intent",
        ),
        Rule(
            "/v1/payment_intents/<intent_id>/capture",
            methods=["POST"],
            endpoint="capture_payment_intent",
        ),
        Rule(
            "/v1/payment_intents/<intent_id>/cancel",
            methods=["POST"],
            endpoint="cancel_payment_intent",
        ),
        Rule("/v1/charges", methods=["GET"], endpoint="list_charges"),
        Rule("/v1/charges/<charge_id>", methods=["GET"], endpoint="retrieve_charge"),
        Rule("/v1/refunds", methods=["POST"], endpoint="create_refund"),
        Rule("/v1/refunds", methods=["GET"], endpoint="list_refunds"),
        Rule("/v1/refunds/<refund_id>", methods=["GET"], endpoint="retrieve_refund"),
        Rule("/v1/terminal/locations", methods=["POST"], endpoint="create_location"),
        Rule("/v1/terminal/locations", methods=["GET"], endpoint="list_locations"),
        Rule("/v1/terminal/locations/<location_id>", methods=["GET"], endpoint="retrieve_location"),
        Rule(
            "/v1/terminal/locations/<location_id>", methods=["DELETE"], endpoint="delete_location"
        ),
        Rule("/v1/terminal/readers", methods=["POST"], endpoint="register_reader"),
        Rule("/v1/terminal/readers", methods=["GET"], endpoint="list_readers"),
        Rule("/v1/terminal/readers/<reader_id>", methods=["GET"], endpoint="retrieve_reader"),
        Rule("/v1/terminal/readers/<reader_id>", methods=["POST"], endpoint="update_reader"),
        Rule("/v1/terminal/readers/<reader_id>", methods=["DELETE"], endpoint="delete_reader"),
        Rule(
            "/v1/terminal/readers/<reader_id>/process_payment_intent",
            methods=["POST"],
            endpoint="process_payment_intent",
        ),
        Rule(
            "/v1/terminal/readers/<reader_id>/refund_payment",
            methods=["POST"],
            endpoint="refund_payment",
        ),
        Rule(
            "/v1/terminal/readers/<reader_id>/cancel_action",
            methods=["POST"],
            endpoint="cancel_action",
        ),
        Rule(
            "/v1/test_helpers/terminal/readers/<reader_id>/present_payment_method",
            methods=["POST"],
            endpoint="present_payment_method",
        ),
        Rule("/v1/events", methods=["GET"], endpoint="list_events"),
        Rule("/v1/events/<event_id>", methods=["GET"], endpoint="retrieve_event"),
        # The fake's own admin switches (API key required).
        Rule("/_fake/reset", methods=["POST"], endpoint="admin_reset"),
        Rule("/_fake/webhook_endpoints", methods=["GET", "POST"], endpoint="admin_endpoints"),
        Rule(
            "/_fake/webhook_endpoints/<endpoint_id>",
            methods=["DELETE"],
            endpoint="admin_delete_endpoint",
        ),
        Rule("/_fake/webhooks/mode", methods=["POST"], endpoint="admin_webhook_mode"),
        Rule("/_fake/webhooks/flush", methods=["POST"], endpoint="admin_webhook_flush"),
        Rule("/_fake/webhooks/held", methods=["POST"], endpoint="admin_webhook_take_held"),
        Rule("/_fake/webhooks/attempts", methods=["GET"], endpoint="admin_webhook_attempts"),
        Rule(
            "/_fake/accounts/<account_id>/state", methods=["POST"], endpoint="admin_account_state"
        ),
        Rule(
            "/_fake/terminal/readers/<reader_id>/status",
            methods=["POST"],
            endpoint="admin_reader_status",
        ),
        # Pages a browser visits (an unguessable token or the client secret stands for the key).
        Rule("/", methods=["GET"], endpoint="page_index"),
        Rule(
            "/_fake/connect/onboarding/<token>", methods=["GET", "POST"], endpoint="page_onboarding"
        ),
        Rule("/_fake/3ds/<token>", methods=["GET", "POST"], endpoint="page_3ds"),
        Rule("/_fake/checkout/<intent_id>", methods=["GET", "POST"], endpoint="page_checkout"),
        Rule("/_fake/receipts/<charge_id>", methods=["GET"], endpoint="page_receipt"),
    ],
    strict_slashes=False,
)


class FakeStripeApp:
    """WSGI callable around one :class:`FakeStripe`."""

    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        request_id = random_id("req", 14)
        try:
            endpoint, values = self._match(request)
            if endpoint.startswith("page_"):
                response: Response = getattr(self, endpoint)(request, **values)
                return response
            self._authenticate(request)
            params = self._params(request)
            if endpoint.startswith("admin_"):
                return self._json(200, getattr(self, endpoint)(params, **values), request_id)
            return self._api(request, endpoint, values, params, request_id)
        except StripeFakeError as error:
            return self._json(error.status, error.body(), request_id)

    def _match(self, request: Request) -> tuple[str, dict[str, Any]]:
        adapter = URLS.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except HTTPException:
            message = (
                f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/."
            )
            raise StripeFakeError(404, message) from None
        return str(endpoint), dict(values)

    # -- the API ---------------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        key = ""
        if header.startswith("Bearer "):
            key = header[len("Bearer ") :].strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[len("Basic ") :]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            message = (
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY')."
            )
            raise StripeFakeError(401, message)
        allowed = self.fake.api_keys
        test_key = key.startswith(("sk_test_", "rk_test_"))
        if not test_key or (allowed is not None and key not in allowed):
            shown = key[:8] + "*" * 12 + key[-4:] if len(key) > 12 else "****"
            raise StripeFakeError(401, f"Invalid API Key provided: {shown}")

    def _params(self, request: Request) -> dict[str, Any]:
        pairs = list(request.args.items(multi=True))
        if request.method == "POST":
            pairs += list(request.form.items(multi=True))
        return p.decode(pairs)

    def _api(
        self,
        request: Request,
        endpoint: str,
        values: dict[str, str],
        params: dict[str, Any],
        request_id: str,
    ) -> Response:
        fake = self.fake
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        route = f"{request.method} {request.path}"
        print_ = fingerprint(request.method, request.path, params)
        with fake.lock:
            try:
                store = fake.store_for(request.headers.get("Stripe-Account"))
            except StripeFakeError as error:
                return self._json(error.status, error.body(), request_id)
            if key:
                saved = store.idempotency.get(key)
                if saved is not None:
                    if saved.fingerprint == print_:
                        return self._json(
                            saved.status, saved.body, request_id, replayed=saved.request_id
                        )
                    return self._json(400, _idempotency_error(key, saved, route).body(), request_id)
            fake.request.request_id = request_id
            fake.request.idempotency_key = key
            try:
                body = dict(API_HANDLERS[endpoint](fake, store, params, **values))
                status, should_retry, keep = 200, None, True
            except StripeFakeError as error:
                body = error.body()
                status, should_retry, keep = error.status, error.should_retry, error.saved
            finally:
                fake.request.request_id = None
                fake.request.idempotency_key = None
            # The answer is frozen now: later changes to the objects must not alter a replay.
            frozen = json.loads(json.dumps(body))
            if key and keep:
                store.idempotency[key] = SavedResponse(print_, route, status, frozen, request_id)
        return self._json(status, frozen, request_id, should_retry=should_retry)

    def _json(
        self,
        status: int,
        body: Mapping[str, Any],
        request_id: str,
        *,
        replayed: str | None = None,
        should_retry: bool | None = None,
    ) -> Response:
        response = Response(json.dumps(body, indent=2), status=status, mimetype="application/json")
        response.headers["Request-Id"] = request_id
        response.headers["Stripe-Version"] = "2026-10-28.endive"
        if replayed is not None:
            response.headers["Idempotent-Replayed"] = "true"
            response.headers["Original-Request"] = replayed
        if should_retry is not None:
            response.headers["Stripe-Should-Retry"] = "true" if should_retry else "false"
        return response

    # -- admin switches --------------------------------------------------------------------------

    def admin_reset(self, params: dict[str, Any]) -> dict[str, Any]:
        self.fake.reset()
        return {"reset": True}

    def admin_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        if "url" in params:
            url = p.string(params, "url", required=True)
            assert url is not None
            try:
                endpoint = self.fake.add_webhook_endpoint(url, p.string(params, "secret"))
            except ValueError as error:
                raise p.parameter_invalid("url", str(error)) from error
            return {"id": endpoint.id, "url": endpoint.url, "secret": endpoint.secret}
        with self.fake.lock:
            endpoints = list(self.fake.webhooks.endpoints.values())
        data = [{"id": item.id, "url": item.url, "secret": item.secret} for item in endpoints]
        return {"object": "list", "data": data}

    def admin_delete_endpoint(self, params: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
        self.fake.remove_webhook_endpoint(endpoint_id)
        return {"id": endpoint_id, "deleted": True}

    def admin_webhook_mode(self, params: dict[str, Any]) -> dict[str, Any]:
        mode = p.choice(params, "mode", [mode.value for mode in DeliveryMode])
        if mode is None:
            raise p.parameter_missing("mode")
        self.fake.webhooks.set_mode(mode)
        return {"mode": mode}

    def admin_webhook_flush(self, params: dict[str, Any]) -> dict[str, Any]:
        count = self.fake.webhooks.flush(
            shuffle=p.boolean(params, "shuffle"),
            copies=p.integer(params, "copies", minimum=1) or 1,
            seed=p.integer(params, "seed"),
        )
        return {"queued": count}

    def admin_webhook_take_held(self, params: dict[str, Any]) -> dict[str, Any]:
        deliveries = self.fake.webhooks.take_held(
            shuffle=p.boolean(params, "shuffle"),
            copies=p.integer(params, "copies", minimum=1) or 1,
            seed=p.integer(params, "seed"),
        )
        data = [
            {
                "event_id": item.event_id,
                "url": item.url,
                "payload": item.payload.decode(),
                "headers": item.headers,
            }
            for item in deliveries
        ]
        return {"object": "list", "data": data}

    def admin_webhook_attempts(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.fake.lock:
            attempts = list(self.fake.webhooks.attempts)
        data = [
            {
                "event_id": item.event_id,
                "endpoint_id": item.endpoint_id,
                "attempt": item.attempt,
                "status": item.status,
                "error": item.error,
            }
            for item in attempts
        ]
        return {"object": "list", "data": data}

    def admin_account_state(self, params: dict[str, Any], account_id: str) -> dict[str, Any]:
        changes = {
            name: p.boolean(params, name)
            for name in ("details_submitted", "charges_enabled", "payouts_enabled")
            if name in params
        }
        return accounts.update_account_state(self.fake, account_id, **changes)

    def admin_reader_status(self, params: dict[str, Any], reader_id: str) -> dict[str, Any]:
        status = p.string(params, "status", required=True)
        assert status is not None
        return terminal.set_reader_status(self.fake, reader_id, status)

    # -- browser pages ---------------------------------------------------------------------------

    def page_index(self, request: Request) -> Response:
        body = (
            "<p>This server imitates the parts of Stripe's API that Comptoir uses. Payments made "
            "here are simulated: no money moves.</p>"
        )
        return _page("Simulated Stripe", body)

    def page_onboarding(self, request: Request, token: str) -> Response:
        fake = self.fake
        with fake.lock:
            link = fake.links.get(token)
            if link is None or link.kind != "onboarding":
                return _page("Link not found", "<p>This onboarding link does not exist.</p>", 404)
            expired = link.used or fake.now() > int(link.data["expires_at"])
            if expired:
                return _redirect(str(link.data["refresh_url"]))
            if request.method == "GET":
                body = (
                    f"<p>Simulated onboarding of the connected account "
                    f"<code>{html.escape(link.account_id or '')}</code>. No details are asked: "
                    "completing it enables card payments on this test account.</p>"
                    '<form method="post">'
                    '<button type="submit" name="action" value="complete">Complete onboarding'
                    "</button> "
                    '<button type="submit" name="action" value="leave">Leave for now</button>'
                    "</form>"
                )
                return _page("Simulated Stripe onboarding", body)
            link.used = True
            if request.form.get("action") == "complete" and link.account_id:
                accounts.complete_onboarding(fake, link.account_id)
            return _redirect(str(link.data["return_url"]))

    def page_3ds(self, request: Request, token: str) -> Response:
        choice = request.form.get("action") or request.args.get("action")
        if choice not in ("approve", "deny"):
            with self.fake.lock:
                link = self.fake.links.get(token)
            if link is None or link.kind != "3ds":
                return _page("Not found", "<p>This authentication page does not exist.</p>", 404)
            body = (
                "<p>Simulated 3-D Secure: the bank asks the cardholder to confirm the payment "
                f"<code>{html.escape(link.object_id)}</code>.</p>"
                '<form method="post">'
                '<button type="submit" name="action" value="approve">Complete authentication'
                "</button> "
                '<button type="submit" name="action" value="deny">Fail authentication</button>'
                "</form>"
            )
            return _page("Simulated 3-D Secure", body)
        try:
            intent, return_url = payments.authenticate(
                self.fake, token, approve=choice == "approve"
            )
        except StripeFakeError:
            return _page("Not found", "<p>This authentication page does not exist.</p>", 404)
        return _back_to_merchant(intent, return_url)

    def page_checkout(self, request: Request, intent_id: str) -> Response:
        source = request.form if request.method == "POST" else request.args
        secret = source.get("client_secret", "")
        return_url = source.get("return_url") or None
        fake = self.fake
        with fake.lock:
            found = fake.locate(intent_id)
            known = found is not None and secret and found[1].get("client_secret") == secret
            if found is None or not known or "card" not in found[1]["payment_method_types"]:
                return _page("Not found", "<p>This payment does not exist.</p>", 404)
            store, intent = found
            error = ""
            if request.method == "POST" and intent["status"] in payments.CONFIRMABLE:
                card = card_for_number(request.form.get("card_number", ""))
                if card is None:
                    error = "Your card number is incorrect."
                else:
                    payment_method = charges.new_payment_method(fake, store, card, "card")
                    try:
                        payments.pay_online(
                            fake,
                            store,
                            intent,
                            card=card,
                            payment_method=payment_method,
                            return_url=return_url,
                        )
                    except StripeFakeError as declined:
                        error = declined.message
            if intent["status"] == "requires_action":
                return _redirect(intent["next_action"]["redirect_to_url"]["url"])
            if intent["status"] not in payments.CONFIRMABLE:
                return _back_to_merchant(intent, return_url)
            amount = payments.format_amount(intent["amount"], intent["currency"])
        notice = f'<p role="alert"><strong>{html.escape(error)}</strong></p>' if error else ""
        body = (
            f"<p>Simulated card payment of <strong>{html.escape(amount)}</strong>. "
            "Use a Stripe test card: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined, "
            "4000 0027 6000 3184 asks for 3-D Secure.</p>"
            f"{notice}"
            '<form method="post">'
            f'<input type="hidden" name="client_secret" value="{html.escape(secret)}">'
            f'<input type="hidden" name="return_url" value="{html.escape(return_url or "")}">'
            '<label for="card_number">Card number</label> '
            '<input id="card_number" name="card_number" inputmode="numeric" '
            'autocomplete="cc-number" value="4242 4242 4242 4242"> '
            '<button type="submit">Pay</button>'
            "</form>"
        )
        return _page("Simulated card payment", body, 402 if error else 200)

    def page_receipt(self, request: Request, charge_id: str) -> Response:
        with self.fake.lock:
            found = self.fake.locate(charge_id)
            if found is None or found[1].get("object") != "charge":
                return _page("Not found", "<p>No such receipt.</p>", 404)
            charge = found[1]
            amount = payments.format_amount(charge["amount"], charge["currency"])
        body = f"<p>Simulated receipt for {html.escape(charge_id)}: {html.escape(amount)}.</p>"
        return _page("Simulated receipt", body)


def _idempotency_error(key: str, saved: SavedResponse, route: str) -> StripeFakeError:
    if saved.endpoint != route:
        message = (
            "Keys for idempotent requests can only be used for the same endpoint they were first "
            f"used for ('{saved.endpoint}' vs '{route}'). Try using a key other than '{key}' if "
            "you meant to execute a different request."
        )
    else:
        message = (
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request."
        )
    return StripeFakeError(400, message, type="idempotency_error")


def _redirect(url: str) -> Response:
    return Response(status=303, headers={"Location": url})


def _back_to_merchant(intent: Mapping[str, Any], return_url: str | None) -> Response:
    """Send the browser back like Stripe does after a redirect-based payment step."""
    status = "succeeded" if intent["status"] in ("succeeded", "requires_capture") else "failed"
    if not return_url:
        return _page("Payment " + status, f"<p>The payment {status}. You can close this page.</p>")
    query = urlencode(
        {
            "payment_intent": intent["id"],
            "payment_intent_client_secret": intent["client_secret"],
            "redirect_status": status,
        }
    )
    parts = urlsplit(return_url)
    joined = f"{parts.query}&{query}" if parts.query else query
    return _redirect(urlunsplit(parts._replace(query=joined)))


def _page(title: str, body: str, status: int = 200) -> Response:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body>"
        "<p><strong>Test mode: simulated payments, no money moves.</strong></p>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(document, status=status, mimetype="text/html")
