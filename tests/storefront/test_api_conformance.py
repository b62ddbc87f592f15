"""The catalog and shop API checked against its OpenAPI document by schemathesis."""

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

from tests.storefront.test_api import key_for
from tests.storefront.world import World
from tests.tenants.api_helpers import assume_sent_as_generated

# Operations whose valid-looking input can still be refused on meaning (422): a name empty in
# both languages, an unknown tag id, a SKU already used, a wrong password.
CHECKED_ON_MEANING = {
    ("/api/v1/o/{org}/tags", "post"),
    ("/api/v1/o/{org}/tags/{tag_id}", "patch"),
    ("/api/v1/o/{org}/articles", "post"),
    ("/api/v1/o/{org}/articles/{article_id}", "patch"),
    ("/api/v1/o/{org}/shops", "post"),
    ("/api/v1/o/{org}/shops/{shop}", "patch"),
    ("/api/v1/o/{org}/shops/{shop}/unlock", "post"),
}

OPERATIONS = [
    ("/api/v1/o/{org}/tags", "get", {}),
    ("/api/v1/o/{org}/tags", "post", {}),
    ("/api/v1/o/{org}/tags/{tag_id}", "get", {"tag_id": "customer"}),
    ("/api/v1/o/{org}/tags/{tag_id}", "patch", {"tag_id": "customer"}),
    ("/api/v1/o/{org}/tags/{tag_id}", "delete", {}),
    ("/api/v1/o/{org}/articles", "get", {}),
    ("/api/v1/o/{org}/articles", "post", {}),
    ("/api/v1/o/{org}/articles/{article_id}", "get", {"article_id": "article"}),
    ("/api/v1/o/{org}/articles/{article_id}", "patch", {"article_id": "article"}),
    ("/api/v1/o/{org}/shops", "get", {}),
    ("/api/v1/o/{org}/shops", "post", {}),
    ("/api/v1/o/{org}/shops/{shop}", "get", {"shop": "public"}),
    ("/api/v1/o/{org}/shops/{shop}", "patch", {"shop": "public"}),
    ("/api/v1/o/{org}/shops/{shop}/unlock", "post", {"shop": "password"}),
    ("/api/v1/o/{org}/shops/{shop}/articles", "get", {"shop": "public"}),
    ("/api/v1/o/{org}/shops/{shop}/articles/{article_id}", "get", {"shop": "public"}),
]


@dataclass
class Target:
    world: World
    headers: dict[str, str]

    def pinned(self, names: dict[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {"org": self.world.org_slug}
        for parameter, name in names.items():
            if parameter == "tag_id":
                values[parameter] = self.world.tags[name]
            elif parameter == "article_id":
                values[parameter] = self.world.articles[("customer", "active")]
            else:
                values[parameter] = self.world.shop_slugs[name]
        return values


@pytest.fixture
def target(app: Flask, world: World) -> Target:
    return Target(world=world, headers=key_for(app, world.org_slug))


def test_every_catalog_operation_is_documented(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path, method, _pinned in OPERATIONS:
        assert method in paths[path], (path, method)


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize(("path", "method", "names"), OPERATIONS)
def test_catalog_api_conforms_to_its_document(
    app: Flask, target: Target, path: str, method: str, names: dict[str, str], mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema[path][method.upper()]
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=target.pinned(names))

    @given(case=strategy)
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        assume_sent_as_generated(case)
        case.call_and_validate(headers=target.headers, excluded_checks=excluded)

    excluded = [positive_data_acceptance] if (path, method) in CHECKED_ON_MEANING else []

    check()
