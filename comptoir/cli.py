"""The ``comptoir`` command: the Flask CLI group (``comptoir db upgrade``, ``comptoir run``)."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup, run_command


def _create_app() -> object:
    from comptoir.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def main() -> None:
    """Comptoir: shops and counters for organizations that run activities."""


# ``comptoir serve`` is the same as ``comptoir run``: the dev server.
main.add_command(run_command, "serve")
