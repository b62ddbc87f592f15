"""``comptoir worker``, ``comptoir scheduler``, and ``comptoir serve`` (the dev server, with the
scheduler in a background thread on the embedded default)."""

from __future__ import annotations

import os
import signal
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import click
from flask import current_app
from flask.cli import ScriptInfo, get_debug_flag, run_command, with_appcontext
from rq import SimpleWorker
from werkzeug.serving import is_running_from_reloader

from comptoir.billing import stripe_demo
from comptoir.jobs.scheduler import DEFAULT_RETRY_INTERVAL, Scheduler, start_background_scheduler
from comptoir.jobs.worker import ComptoirWorker
from comptoir.platform.queue import QUEUE_NAMES, redis_connection, rq_queue
from comptoir.platform.settings import SETTINGS_EXTENSION, current_settings


@click.command("worker")
@click.option("--burst", is_flag=True, help="Run the jobs queued now, then quit.")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    type=click.Choice(QUEUE_NAMES),
    help="Listen to this queue only (repeatable). Default: high, default, low, in that order.",
)
@click.option(
    "--no-fork",
    is_flag=True,
    help="Run jobs in the worker process instead of a forked child (debugging).",
)
@with_appcontext
def worker_command(burst: bool, queues: tuple[str, ...], no_fork: bool) -> None:
    """Run an RQ worker for Comptoir's queues (e-mails, PDFs, webhooks)."""
    settings = current_settings()
    if not settings.redis_url:
        message = (
            "COMPTOIR_REDIS_URL is not set. Without Redis, jobs run inside the web process "
            "after each commit (the embedded default); there is nothing for a worker to do."
        )
        raise click.ClickException(message)
    # Priority order is the order of QUEUE_NAMES, whatever order the options came in.
    names = [name for name in QUEUE_NAMES if not queues or name in queues]
    connection = redis_connection(settings.redis_url)
    worker_class = SimpleWorker if no_fork else ComptoirWorker
    worker = worker_class([rq_queue(connection, name) for name in names], connection=connection)
    click.echo(
        f"worker {worker.name}: listening on {', '.join(names)}"
        f"{' until the queues are empty' if burst else ''}"
    )
    # with_scheduler: RQ's own scheduler moves retries whose backoff delay is over back to
    # their queue (one worker among all takes that role).
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


def _echo_report(message: str, *, routine: bool = False) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    click.echo(f"{stamp} scheduler[{os.getpid()}] {message}")


@click.command("scheduler")
@click.option(
    "--retry-interval",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_RETRY_INTERVAL,
    show_default=True,
    help="Seconds between a standby's attempts to take the lock (and the leader's lock checks).",
)
@click.option("--once", is_flag=True, help="If no other scheduler is active, run every entry once.")
@with_appcontext
def scheduler_command(retry_interval: float, once: bool) -> None:
    """Run the periodic sweeps; only one scheduler is active at a time, the others stand by."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        _echo_report(f"received {signal.Signals(signum).name}; stopping")
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    scheduler = Scheduler(app, retry_interval=retry_interval, report=_echo_report)
    led = scheduler.run(stop, once=once)
    if once and not led:
        raise click.ClickException("another scheduler is active; nothing was run")


# --------------------------------------------------------------------------- serve


def _serve(scheduler: bool | None, **run_options: Any) -> None:
    context = click.get_current_context()
    app = context.ensure_object(ScriptInfo).load_app()
    settings = app.extensions[SETTINGS_EXTENSION]
    wanted = (not settings.redis_url) if scheduler is None else scheduler
    reload = run_options.get("reload")
    if reload is None:
        reload = get_debug_flag()
    # With the reloader, the first process only watches files; the child serves.
    serving_process = not reload or is_running_from_reloader()
    # Before the scheduler, whose sweeps ask Stripe: the gateway must point at the fake by then.
    if serving_process and stripe_demo.simulated_by_default(settings):
        fake = stripe_demo.start_embedded_fake(
            app,
            webhook_url=stripe_demo.webhook_url(run_options.get("host"), run_options.get("port")),
        )
        click.echo(f" * Simulated payments: a Stripe fake on {fake.base_url} (no money moves)")
    if wanted and serving_process:
        start_background_scheduler(app)
        click.echo(" * Scheduler: periodic sweeps run in a background thread of this process")
    context.invoke(run_command.callback, **run_options)  # type: ignore[arg-type]


serve_command = click.Command(
    "serve",
    callback=_serve,
    params=[
        *run_command.params,
        click.Option(
            ["--scheduler/--no-scheduler"],
            default=None,
            help="Run the periodic sweeps in a background thread. "
            "Default: on when no Redis URL is configured (the embedded default).",
        ),
    ],
    help=(
        "Run the development server. On the embedded default it also runs the scheduler's "
        "periodic sweeps in a background thread (never under gunicorn), and, when no Stripe is "
        "configured, a Stripe fake on loopback for simulated payments."
    ),
    short_help="Run the development server (with the sweeps on the embedded default).",
)
