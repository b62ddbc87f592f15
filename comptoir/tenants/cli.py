"""Bootstrap commands (stub)."""

from __future__ import annotations

import click


@click.command("create-operator")
def create_operator_command() -> None:
    """Create a platform operator."""


@click.command("create-organization")
def create_organization_command() -> None:
    """Create an organization."""


@click.command("create-api-key")
def create_api_key_command() -> None:
    """Create an API key."""
