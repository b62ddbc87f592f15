"""The orders, checkout and checkout-forms API against their OpenAPI document (schemathesis)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from comptoir.billing.payment_methods import Audience
from tests.billing.order_world import (
    ATTENDANT,
    OrderWorld,
    build_order_world,
    line,
    place,
)
from tests.tenants.api_helpers import assume_sent_as_generated, bearer

# Operations whose refusals depend on the order's state and money (more than the balance, a
# method the registry does not have, keys already used in the form): a body valid by the
# document may still be refused with 422, so "valid data is accepted" cannot hold for them.
STATEFUL = {
    "/api/v1/o/{org}/orders/{order_id}/payments",
    "/api/v1/o/{org}/orders/{order_id}/refunds",
    "/api/v1/o/{org}/checkout-forms",
}
OPERATIONS = [
    ("/api/v1/o/{org}/orders", "get", False),
    ("/api/v1/o/{org}/orders/{order_id}", "get", True),
    ("/api/v1/o/{org}/orders/{order_id}/payments", "post", True),
    ("/api/v1/o/{org}/orders/{order_id}/refunds", "post", True),
    ("/api/v1/o/{org}/orders/{order_id}/cancel", "post", True),
    ("/api/v1/o/{org}/orders/{order_id}/send-invoice", "post", True),
    ("/api/v1/o/{org}/checkout-forms", "get", False),
    ("/api/v1/o/{org}/checkout-forms", "post", False),
]


@pytest.fixture
def world(app: Flask) -> OrderWorld:
    return build_order_world(app, slug="fuzz-orders")


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize(("path", "method", "existing"), OPERATIONS)
def test_orders_api_conforms_to_its_document(
    app: Flask, world: OrderWorld, path: str, method: str, existing: bool, mode: GenerationMode
) -> None:
    order_id, _token = place(
        app,
        world,
        [line(world, "cap", 2), line(world, "course")],
        method="cash",
        audience=Audience.STAFF,
        actor=ATTENDANT,
        cash_tendered=5000,
    )
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema[path][method.upper()]
    pinned: dict[str, Any] = {"org": world.org_slug}
    if existing:
        pinned["order_id"] = order_id
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=pinned)

    excluded = [positive_data_acceptance] if path in STATEFUL and method == "post" else []

    @given(case=strategy)
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        assume_sent_as_generated(case)
        response = case.call_and_validate(
            headers=bearer(world.keys["owner"]), excluded_checks=excluded
        )
        # Whatever the body, a refusal is a clear 4xx in the error shape, never a 500.
        assert response.status_code < 500
        if response.status_code >= 400:
            assert set(response.json()["error"]) == {"code", "message", "fields"}

    check()
