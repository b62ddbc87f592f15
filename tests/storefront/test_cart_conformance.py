"""The cart API checked against its OpenAPI document by schemathesis: documented answers only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.storefront.cart_world import CartWorld, bearer, build_cart_world
from tests.tenants.api_helpers import assume_sent_as_generated

# Valid-looking input that the cart can still refuse on meaning: an article that does not exist
# or is sold out, a quantity above the per-order maximum, a renewal too early, a price without
# its reason, an expiry that no longer fits the stock.
CHECKED_ON_MEANING = {
    ("/api/v1/o/{org}/carts/{cart_id}", "patch"),
    ("/api/v1/o/{org}/carts/{cart_id}/renew", "post"),
    ("/api/v1/o/{org}/carts/{cart_id}/lines", "post"),
    ("/api/v1/o/{org}/carts/{cart_id}/lines/{line_id}", "patch"),
    ("/api/v1/o/{org}/carts/{cart_id}/lines/{line_id}", "delete"),
}

# Operations with a body to break: the others take only the pinned path and their headers.
WITH_INPUT = {
    ("/api/v1/o/{org}/carts/{cart_id}", "patch"),
    ("/api/v1/o/{org}/carts/{cart_id}/lines", "post"),
    ("/api/v1/o/{org}/carts/{cart_id}/lines/{line_id}", "patch"),
}

OPERATIONS = [
    ("/api/v1/o/{org}/shops/{shop}/carts", "post"),
    ("/api/v1/o/{org}/carts/{cart_id}", "get"),
    ("/api/v1/o/{org}/carts/{cart_id}", "patch"),
    ("/api/v1/o/{org}/carts/{cart_id}/renew", "post"),
    ("/api/v1/o/{org}/carts/{cart_id}/lines", "post"),
    ("/api/v1/o/{org}/carts/{cart_id}/lines/{line_id}", "patch"),
    ("/api/v1/o/{org}/carts/{cart_id}/lines/{line_id}", "delete"),
    ("/api/v1/o/{org}/carts/{cart_id}/invoice-preview", "get"),
]


@dataclass
class Target:
    world: CartWorld
    cart_id: int
    line_id: int
    headers: dict[str, str]

    def pinned(self, path: str) -> dict[str, Any]:
        values: dict[str, Any] = {"org": self.world.org_slug}
        if "{shop}" in path:
            values["shop"] = self.world.shop_slug
        if "{cart_id}" in path:
            values["cart_id"] = self.cart_id
        if "{line_id}" in path:
            values["line_id"] = self.line_id
        return values


@pytest.fixture
def target(app: Flask, client: FlaskClient) -> Target:
    world = build_cart_world(app)
    headers = bearer(world, "owner")
    cart = client.post(f"{world.api}/shops/{world.shop_slug}/carts").get_json()
    line = client.post(
        f"{world.api}/carts/{cart['id']}/lines",
        json={"article_id": world.articles["goggles"], "quantity": 1},
        headers=headers,
    ).get_json()
    return Target(world=world, cart_id=cart["id"], line_id=line["id"], headers=headers)


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_cart_api_conforms_to_its_document(
    app: Flask, target: Target, path: str, method: str, mode: GenerationMode
) -> None:
    if mode is GenerationMode.NEGATIVE and (path, method) not in WITH_INPUT:
        pytest.skip("nothing in this operation's input can be made invalid")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema[path][method.upper()]
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=target.pinned(path))
    excluded = [positive_data_acceptance] if (path, method) in CHECKED_ON_MEANING else []

    @given(case=strategy)
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        assume_sent_as_generated(case)
        case.call_and_validate(headers=target.headers, excluded_checks=excluded)

    check()
