"""The ``comptoir`` command: the Flask CLI group (``comptoir db upgrade``, ``comptoir run``)."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

from comptoir.jobs.cli import serve_command


def _create_app() -> object:
    from comptoir.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def main() -> None:
    """Comptoir: shops and counters for organizations that run activities."""


# ``comptoir serve``: ``comptoir run`` plus, on the embedded default, the periodic sweeps in a
# background thread (``comptoir.jobs.cli``).
main.add_command(serve_command, "serve")
