"""Fixtures of the storefront tests."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.storefront.world import World, build_world


@pytest.fixture
def world(app: Flask) -> World:
    return build_world(app)
