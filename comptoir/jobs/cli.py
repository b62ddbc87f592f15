"""``comptoir worker`` and ``comptoir scheduler`` (stub)."""

from __future__ import annotations

import click


@click.command("worker")
def worker_command() -> None:
    """Run an RQ worker."""


@click.command("scheduler")
def scheduler_command() -> None:
    """Run the scheduler."""
