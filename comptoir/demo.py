"""Demo data (stub)."""

from __future__ import annotations

import click


@click.command("seed-demo")
def seed_demo_command() -> None:
    """Seed the demo organization."""
