"""The checkout of a cart through the API: forms, answers, methods, staff extras, stock,
Idempotency-Key, and bad input that changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.billing.models import Invoice, Order
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.storefront import checkout_forms
from comptoir.storefront.models import Article, Shop
from comptoir.tenants.models import Customer
from tests.billing.order_world import (
    OWNER_ANSWERS,
    SET_UP,
    OrderWorld,
    build_order_world,
    cart_status,
    count,
    database,
    expire_cart,
    holds_of,
    mails,
    new_cart,
    scope,
    sold,
)
from tests.tenants.api_helpers import bearer

CONSENT_FORM = [
    {
        "key": "allergies",
        "type": "long_text",
        "label": {"fr": "Allergies", "en": "Allergies"},
        "required": False,
    },
    {
        "key": "level",
        "type": "single_choice",
        "label": {"fr": "Niveau", "en": "Level"},
        "required": True,
        "options": [
            {"value": "beginner", "label": {"fr": "Débutant", "en": "Beginner"}},
            {"value": "advanced", "label": {"fr": "Avancé", "en": "Advanced"}},
        ],
    },
    {
        "key": "waiver",
        "type": "consent",
        "label": {"fr": "Décharge", "en": "Waiver"},
        "help": {"fr": "J'accepte les risques.", "en": "I accept the risks."},
        "required": True,
    },
]
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture
def world(app: Flask) -> OrderWorld:
    return build_order_world(app)


def checkout(
    client: FlaskClient, world: OrderWorld, cart_id: int, body: dict[str, Any], **headers: str
) -> Any:
    return client.post(f"{world.api}/carts/{cart_id}/checkout", json=body, headers=headers)


def add_form(
    app: Flask,
    world: OrderWorld,
    *,
    name: str = "Inscription",
    priority: int = 0,
    fields: Any = None,
    article: str | None = None,
    default: bool = False,
) -> int:
    with scope(app, world.organization_id) as organization:
        form = checkout_forms.create_form(
            organization=organization,
            actor=SET_UP,
            name=name,
            priority=priority,
            fields=fields if fields is not None else CONSENT_FORM,
        )
        db.session.flush()
        if article is not None:
            db.session.execute(
                sa.update(Article)
                .where(Article.id == world.articles[article])
                .values(checkout_form_id=form.id)
            )
        if default:
            db.session.execute(
                sa.update(Shop)
                .where(Shop.id == world.shop_id)
                .values(default_checkout_form_id=form.id)
            )
        db.session.commit()
        return form.id


def answers(**extra: Any) -> dict[str, Any]:
    return {
        **OWNER_ANSWERS,
        "level": "beginner",
        "waiver": {"accepted": True, "signature_png": PNG},
        **extra,
    }


# --------------------------------------------------------------------------- customers


def test_a_customer_checks_out_offline(
    app: Flask, client: FlaskClient, world: OrderWorld, jobs: Any
) -> None:
    add_form(app, world, default=True)
    cart_id, token = new_cart(app, world, [("cap", 2), ("course", 1)])
    response = checkout(
        client,
        world,
        cart_id,
        {"payment_method": "offline", "answers": answers(allergies="Arachides")},
        **{"X-Cart-Token": token},
    )
    assert response.status_code == 201, response.get_json()
    order = response.get_json()
    assert order["state"] == "awaiting_payment"
    assert order["total"] == 3449 + 11498
    assert order["customer"]["email"] == "camille@example.org"
    assert order["form"]["version"] == 1
    assert order["form"]["answers"]["level"] == "beginner"
    assert order["form"]["answers"]["waiver"]["method"] == "drawn"
    assert order["token"]
    assert cart_status(app, cart_id) == "checked_out"
    assert holds_of(app, cart_id) == 0
    assert sold(app, world, "cap") == 2
    with database(app):
        stored = db.session.get(Order, order["id"])
        assert stored is not None
        assert stored.consents[0]["signature_png"] == PNG
        assert stored.consents[0]["text"] == "J'accepte les risques."
        assert stored.consents[0]["ip"]
        customer = db.session.get(Customer, stored.customer_id)
        assert customer is not None
        assert customer.id == world.customers["camille"]
    again = client.get(
        f"{world.api}/orders/{order['id']}", headers={"X-Order-Token": order["token"]}
    )
    assert again.status_code == 200
    jobs()
    jobs()
    confirmation = [
        m for m in mails(app, world.organization_id) if m["to"] == "camille@example.org"
    ]
    assert len(confirmation) == 1
    assert confirmation[0]["attachments"] == ["F-1001.pdf"]
    assert "C-1001" in confirmation[0]["subject"]


def test_a_new_customer_is_created_by_e_mail(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    cart_id, token = new_cart(app, world)
    response = checkout(
        client,
        world,
        cart_id,
        {
            "payment_method": "etransfer",
            "answers": {"first_name": "Léa", "last_name": "Roy", "email": "Lea.Roy@Example.org"},
        },
        **{"X-Cart-Token": token},
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["payment_instructions"]["order_code"] == body["code"]
    with database(app):
        created = db.session.execute(
            sa.select(Customer).where(Customer.email_normalized == "lea.roy@example.org")
        ).scalar_one()
        assert body["customer"]["id"] == created.id


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"payment_method": "cash", "cash_tendered": 5000}, (422, "payment_method")),
        ({"payment_method": "later"}, (422, "payment_method")),
        ({"payment_method": "card"}, (422, "payment_method")),
        ({"payment_method": "offline", "counter_sale": True}, (403, "counter_sale")),
        ({"payment_method": "offline", "customer_id": 1}, (403, "customer_id")),
        (
            {"payment_method": "offline", "answers": {"first_name": "A", "last_name": "B"}},
            (422, "answers.email"),
        ),
        (
            {"payment_method": "offline", "answers": {**OWNER_ANSWERS, "email": "not-an-address"}},
            (422, "answers.email"),
        ),
        (
            {"payment_method": "offline", "answers": {**OWNER_ANSWERS, "shoe_size": "42"}},
            (422, "answers.shoe_size"),
        ),
        ({"payment_method": "offline", "answers": OWNER_ANSWERS, "total": 1}, (422, "total")),
        (
            {"payment_method": "offline", "answers": OWNER_ANSWERS, "unit_price": 1},
            (422, "unit_price"),
        ),
    ],
)
def test_bad_checkouts_change_nothing(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    body: dict[str, Any],
    expected: tuple[int, str],
) -> None:
    status, field = expected
    cart_id, token = new_cart(app, world, [("cap", 3)])
    response = checkout(client, world, cart_id, body, **{"X-Cart-Token": token})
    assert response.status_code == status, response.get_json()
    assert field in response.get_json()["error"]["fields"]
    assert count(app, Order) == 0
    assert count(app, Invoice) == 0
    assert cart_status(app, cart_id) == "active"
    assert holds_of(app, cart_id) == 3
    assert sold(app, world, "cap") == 0


def test_consent_and_form_answers_are_checked(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    add_form(app, world, article="cap")
    cart_id, token = new_cart(app, world, [("cap", 1)])
    headers = {"X-Cart-Token": token}
    for given, field in (
        (answers(waiver={"accepted": True}), "answers.waiver"),
        (answers(waiver={"accepted": False, "typed_name": "Camille"}), "answers.waiver"),
        (
            answers(waiver={"accepted": True, "signature_png": "data:image/png;base64,AAAA"}),
            "answers.waiver",
        ),
        (answers(level="expert"), "answers.level"),
        (answers(level=""), "answers.level"),
    ):
        response = checkout(
            client, world, cart_id, {"payment_method": "offline", "answers": given}, **headers
        )
        assert response.status_code == 422, given
        assert field in response.get_json()["error"]["fields"], response.get_json()
    assert count(app, Order) == 0
    typed = checkout(
        client,
        world,
        cart_id,
        {
            "payment_method": "offline",
            "answers": answers(waiver={"accepted": True, "typed_name": "Camille Tremblay"}),
        },
        **headers,
    )
    assert typed.status_code == 201
    with database(app):
        consent = db.session.execute(sa.select(Order)).scalar_one().consents[0]
        assert (consent["typed_name"], consent["signature_png"]) == ("Camille Tremblay", "")


def test_the_form_with_the_highest_priority_wins_and_orders_keep_their_version(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    low = add_form(app, world, name="Bas", priority=1, article="cap", fields=[])
    high = add_form(app, world, name="Haut", priority=5, article="course")
    add_form(app, world, name="Défaut", default=True, fields=[])
    cart_id, token = new_cart(app, world, [("cap", 1), ("course", 1)])
    response = checkout(
        client,
        world,
        cart_id,
        {"payment_method": "offline", "answers": answers()},
        **{"X-Cart-Token": token},
    )
    assert response.status_code == 201
    order = response.get_json()
    assert order["form"]["id"] == high
    assert order["form"]["version"] == 1
    # A customer may not pick another form.
    other_cart, other_token = new_cart(app, world, [("cap", 1)])
    forbidden = checkout(
        client,
        world,
        other_cart,
        {"payment_method": "offline", "answers": OWNER_ANSWERS, "checkout_form_id": high},
        **{"X-Cart-Token": other_token},
    )
    assert forbidden.status_code == 403
    with scope(app, world.organization_id) as organization:
        form = checkout_forms.get_form(high)
        checkout_forms.update_form(
            organization=organization,
            actor=Actor(label="owner", role="owner"),
            form=form,
            fields=[
                {"key": "club", "type": "short_text", "label": {"fr": "Club"}, "required": True}
            ],
        )
        db.session.commit()
    with database(app):
        stored = db.session.get(Order, order["id"])
        assert stored is not None
        assert stored.form_version == 1
        assert [f["key"] for f in stored.form_snapshot["fields"]] == [
            "allergies",
            "level",
            "waiver",
        ]
    assert low != high


def test_a_form_of_another_organization_is_not_found(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    other = build_order_world(app, slug="elsewhere")
    foreign = add_form(app, other)
    cart_id, _token = new_cart(app, world)
    response = checkout(
        client,
        world,
        cart_id,
        {"payment_method": "later", "answers": OWNER_ANSWERS, "checkout_form_id": foreign},
        **bearer(world.keys["attendant"]),
    )
    assert response.status_code == 404
    assert "checkout_form_id" in response.get_json()["error"]["fields"]
    assert count(app, Order) == 0
    assert cart_status(app, cart_id) == "active"


# --------------------------------------------------------------------------- staff


def test_a_counter_sale_in_cash_with_change(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    cart_id, _token = new_cart(app, world, [("course", 1)])
    response = checkout(
        client,
        world,
        cart_id,
        {"payment_method": "cash", "counter_sale": True, "cash_tendered": 12000},
        **bearer(world.keys["attendant"]),
    )
    assert response.status_code == 201, response.get_json()
    order = response.get_json()
    assert order["state"] == "paid"
    assert order["counter_sale"] is True
    assert order["customer"] is None
    assert order["payments"][0]["change_due"] == 12000 - 11498
    refused = checkout(
        client,
        world,
        new_cart(app, world)[0],
        {"payment_method": "cash", "counter_sale": True, "cash_tendered": -100},
        **bearer(world.keys["attendant"]),
    )
    assert refused.status_code == 422


def test_a_sale_on_behalf_of_a_customer(app: Flask, client: FlaskClient, world: OrderWorld) -> None:
    cart_id, _token = new_cart(app, world)
    response = checkout(
        client,
        world,
        cart_id,
        {
            "payment_method": "later",
            "customer_id": world.customers["camille"],
            "answers": {**OWNER_ANSWERS, "first_name": "Camille-Anne"},
        },
        **bearer(world.keys["attendant"]),
    )
    assert response.status_code == 201, response.get_json()
    order = response.get_json()
    assert order["customer"]["id"] == world.customers["camille"]
    assert order["customer"]["first_name"] == "Camille-Anne"
    assert order["balance"] == order["total"]
    foreign = checkout(
        client,
        world,
        new_cart(app, world)[0],
        {"payment_method": "later", "customer_id": world.other_customer, "answers": OWNER_ANSWERS},
        **bearer(world.keys["attendant"]),
    )
    assert foreign.status_code == 404


# --------------------------------------------------------------------------- stock and repeats


def test_the_same_idempotency_key_makes_one_order(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    cart_id, token = new_cart(app, world, [("cap", 1)])
    headers = {"X-Cart-Token": token, "Idempotency-Key": "checkout-abc"}
    body = {"payment_method": "offline", "answers": OWNER_ANSWERS}
    first = checkout(client, world, cart_id, body, **headers)
    second = checkout(client, world, cart_id, body, **headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    different = checkout(client, world, cart_id, {**body, "payment_method": "etransfer"}, **headers)
    assert different.status_code == 409
    without_key = checkout(client, world, cart_id, body, **{"X-Cart-Token": token})
    assert without_key.status_code == 409
    assert count(app, Order) == 1
    assert sold(app, world, "cap") == 1


def test_an_expired_cart_whose_stock_is_gone_places_nothing(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    first_id, first_token = new_cart(app, world, [("cap", 6)])
    expire_cart(app, first_id)
    second_id, second_token = new_cart(app, world, [("cap", 10)])
    placed = checkout(
        client,
        world,
        second_id,
        {"payment_method": "offline", "answers": OWNER_ANSWERS},
        **{"X-Cart-Token": second_token},
    )
    assert placed.status_code == 201
    late = checkout(
        client,
        world,
        first_id,
        {"payment_method": "offline", "answers": OWNER_ANSWERS},
        **{"X-Cart-Token": first_token},
    )
    assert late.status_code == 409
    assert late.get_json()["error"]["code"] == "out_of_stock"
    assert count(app, Order) == 1
    assert sold(app, world, "cap") == 10
    assert cart_status(app, first_id) == "active"
    # The numbers the failed checkout did not keep are given to the next order.
    third_id, third_token = new_cart(app, world, [("course", 1)])
    third = checkout(
        client,
        world,
        third_id,
        {"payment_method": "offline", "answers": OWNER_ANSWERS},
        **{"X-Cart-Token": third_token},
    )
    assert (third.get_json()["number"], third.get_json()["invoice"]["number"]) == (1002, "F-1002")


def test_an_expired_cart_whose_stock_is_still_there_is_placed(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    cart_id, token = new_cart(app, world, [("small", 2)])
    expire_cart(app, cart_id)
    response = checkout(
        client,
        world,
        cart_id,
        {"payment_method": "offline", "answers": OWNER_ANSWERS},
        **{"X-Cart-Token": token},
    )
    assert response.status_code == 201
    assert sold(app, world, "small") == 2
    assert response.get_json()["lines"][0]["name"] == "Maillot — Petit"


def test_carts_of_another_organization_or_without_token_are_not_found(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    cart_id, token = new_cart(app, world)
    body = {"payment_method": "offline", "answers": OWNER_ANSWERS}
    assert checkout(client, world, cart_id, body).status_code == 404
    assert (
        checkout(client, world, cart_id, body, **{"X-Cart-Token": token + "x"}).status_code == 404
    )
    assert checkout(client, world, cart_id, body, **bearer(world.keys["other"])).status_code == 404
    assert count(app, Order) == 0


# --------------------------------------------------------------------------- checkout forms API


def test_checkout_forms_api(app: Flask, client: FlaskClient, world: OrderWorld) -> None:
    url = f"{world.api}/checkout-forms"
    headers = bearer(world.keys["admin"])
    created = client.post(
        url, json={"name": "Camp", "priority": 2, "fields": CONSENT_FORM}, headers=headers
    )
    assert created.status_code == 201, created.get_json()
    form = created.get_json()
    assert form["version"] == 1
    assert [f["key"] for f in form["fields"]] == [
        "first_name",
        "last_name",
        "email",
        "allergies",
        "level",
        "waiver",
    ]
    assert form["fields"][0]["fixed"] is True
    # Sending the whole form back (owner block included) changes nothing: same version.
    same = client.patch(f"{url}/{form['id']}", json={"fields": form["fields"]}, headers=headers)
    assert same.status_code == 200
    assert same.get_json()["version"] == 1
    changed = client.patch(
        f"{url}/{form['id']}",
        json={
            "fields": [
                *form["fields"],
                {"key": "club", "type": "short_text", "label": {"fr": "Club"}},
            ]
        },
        headers=headers,
    )
    assert changed.get_json()["version"] == 2
    for body in (
        {"name": "X", "fields": [{"key": "a", "type": "single_choice", "label": {"fr": "A"}}]},
        {"name": "X", "fields": [{"key": "email", "type": "short_text", "label": {"fr": "A"}}]},
        {"name": "X", "fields": [{"key": "a", "type": "consent", "label": {"fr": "A"}}]},
        {"name": "X", "fields": [{"key": "Bad Key", "type": "short_text", "label": {"fr": "A"}}]},
        {"name": "X", "fields": [{"key": "a", "type": "telepathy", "label": {"fr": "A"}}]},
        {"name": "", "fields": []},
    ):
        response = client.post(url, json=body, headers=headers)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["fields"], body
    listed = client.get(url, headers=headers).get_json()
    assert listed["total"] == 1
    assert client.get(url, headers=bearer(world.keys["attendant"])).status_code == 403
    assert (
        client.get(
            f"{world.api}/checkout-forms/{form['id']}", headers=bearer(world.keys["other"])
        ).status_code
        == 404
    )
    assert (
        client.get(
            f"/api/v1/o/{world.other_org_slug}/checkout-forms/{form['id']}",
            headers=bearer(world.keys["other"]),
        ).status_code
        == 404
    )


def test_shop_payment_and_e_mail_settings_through_the_api(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    url = f"{world.api}/shops/{world.shop_slug}"
    headers = bearer(world.keys["admin"])
    refused = client.patch(
        url + "?lang=en",
        json={
            "payment_methods": ["offline", "etransfer"],
            "etransfer": {
                "email": "virements@club.example",
                "reminder_hours": 48,
                "cancel_hours": 24,
            },
            "communication": {"templates": {"confirmation": {"fr": {"body": "{% if %}"}}}},
        },
        headers=headers,
    )
    assert refused.status_code == 422
    fields = refused.get_json()["error"]["fields"]
    assert "etransfer.cancel_hours" in fields
    assert "etransfer.security_question" in fields
    assert "Line 1" in fields["communication.templates.confirmation.fr.body"][0]
    saved = client.patch(
        url,
        json={
            "etransfer": {"email": "virements@club.example", "auto_deposit": True},
            "communication": {"forced_copy": "compta@club.example"},
        },
        headers=headers,
    )
    assert saved.status_code == 200, saved.get_json()
    shop = saved.get_json()
    assert shop["etransfer"]["auto_deposit"] is True
    assert shop["etransfer"]["reminder_hours"] == 48
    assert shop["communication"]["forced_copy"] == "compta@club.example"
    card = client.patch(url, json={"payment_methods": ["card"]}, headers=headers)
    assert card.status_code == 422  # until card payments are registered
