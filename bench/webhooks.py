"""Stripe webhooks accepted per second: ``POST /webhooks/stripe`` against a bare Flask endpoint.

Accepting an event is the webhook view's whole work: verify the ``Stripe-Signature`` against the
raw body, ``INSERT … ON CONFLICT DO NOTHING`` the event and its outbox row in one transaction,
commit, and relay the job to RQ. The processing is a job's business and is not measured.

Migrates a dedicated PostgreSQL database, serves the real app (``wsgi.py``, Redis configured)
with gunicorn on a free loopback port and, with the same gunicorn settings, a bare Flask endpoint
that reads the body and answers 200 (``bench/bare_webhook.py``). Concurrent keep-alive clients,
spread over a few processes, POST signed Stripe-shaped events (a ``payment_intent.succeeded``
with Stripe's example intent, about 2 kB), each with an id of its own. The two servers alternate
(``--rounds``). Only answers ``200`` that stored a new event count as accepted; at the end the
stored events and their queued jobs are counted, to show none was lost.

    python -m bench.webhooks [--seconds 10] [--rounds 2] [--clients 16] [--workers 2] [--threads 4]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.loadgen import KeepAlive, Result, drive, process_pool, processes_for, wait_until
from bench.support import (
    REDIS_URL,
    app_env,
    create_app,
    create_database,
    figures,
    gunicorn,
    parser,
    ratio,
    write_results,
)

DATABASE = "comptoir_bench_webhooks"
WEBHOOK_SECRET = "whsec_comptoir_benchmark"  # noqa: S105 - a loopback-only benchmark
ACCOUNT = "acct_benchmark"
ID_MARK = "evt_BENCHMARK_ID"


def migrate(database_url: str, instance: Path) -> None:
    from flask_migrate import upgrade

    from comptoir.platform.db import db

    with create_app(database_url, instance).app_context():
        upgrade()
        db.session.remove()


def event_template() -> str:
    """A ``payment_intent.succeeded`` event as Stripe sends it, its id to be put in place."""
    from comptoir.billing.stripe_fake.fixtures import Fixtures

    intent = Fixtures.load().build(
        "payment_intent",
        id="pi_benchmark",
        amount=11498,
        amount_received=11498,
        currency="cad",
        status="succeeded",
        metadata={"comptoir_organization_id": "1", "comptoir_order_id": "1"},
    )
    event = Fixtures.load().build(
        "event",
        id=ID_MARK,
        account=ACCOUNT,
        api_version="2026-10-28.endive",
        created=int(time.time()),
        data={"object": intent},
        livemode=False,
        pending_webhooks=1,
        request={"id": None, "idempotency_key": None},
        type="payment_intent.succeeded",
    )
    return json.dumps(event, indent=2)


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Plan:
    port: int
    prefix: str  # unique per run and process: event ids never repeat
    template: str
    start: float
    stop: float


def _client(plan: Plan, index: int, out: Result) -> None:
    from comptoir.billing.stripe_fake.webhooks import sign

    connection = KeepAlive(plan.port)
    first = wait_until(plan.start)
    number = 0
    while time.monotonic() < plan.stop:
        number += 1
        body = plan.template.replace(ID_MARK, f"evt_{plan.prefix}_{index}_{number}").encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(body, WEBHOOK_SECRET),
        }
        started = time.perf_counter()
        status, answer = connection.send("POST", "/webhooks/stripe", body=body, headers=headers)
        new_event = status == 200 and b'"duplicate":false' in answer.replace(b" ", b"")
        out.record(status, ok=new_event, elapsed=time.perf_counter() - started)
    out.windows.append((first, time.monotonic()))
    connection.close()


def run(
    pool: ProcessPoolExecutor,
    processes: int,
    port: int,
    template: str,
    *,
    name: str,
    clients: int,
    seconds: float,
) -> Result:
    def plan_for(process: int, _first: int, start: float, stop: float) -> Plan:
        return Plan(
            port=port, prefix=f"{name}_{process}", template=template, start=start, stop=stop
        )

    return drive(pool, processes, _client, plan_for, clients=clients, seconds=seconds)


def stored(database_url: str) -> tuple[int, int]:
    """Events stored and their jobs owed (the outbox rows), as the database has them."""
    with psycopg.connect(database_url) as connection:
        events = connection.execute("SELECT count(*) FROM stripe_events").fetchone()
        jobs = connection.execute(
            "SELECT count(*) FROM outbox_messages WHERE job = 'billing.stripe_event'"
        ).fetchone()
    return int(events[0]) if events else 0, int(jobs[0]) if jobs else 0


def forget_jobs(redis_url: str, since: float) -> int:
    """Take back the jobs the benchmark's events queued in RQ (nobody will process them)."""
    from redis import Redis

    from comptoir.platform.outbox import Queue
    from comptoir.platform.queue import RUN_MESSAGE, rq_queue

    connection = Redis.from_url(redis_url)
    removed = 0
    for name in Queue:
        queue = rq_queue(connection, name.value)
        for job in queue.jobs:
            enqueued = job.enqueued_at.timestamp() if job.enqueued_at else 0
            if job.func_name == RUN_MESSAGE and enqueued >= since:
                job.delete()
                removed += 1
    return removed


def main(argv: list[str]) -> int:
    options = parser("webhooks", __doc__, seconds=10.0, clients=16).parse_args(argv)

    instance = Path(tempfile.mkdtemp(prefix="comptoir-bench-webhooks-"))
    database_url = create_database(DATABASE)
    migrate(database_url, instance)
    template = event_template()
    print(
        f"{options.clients} clients, {options.rounds} x {options.seconds:g} s per server, "
        f"gunicorn gthread {options.workers} workers x {options.threads} threads; "
        f"events of {len(template.encode())} bytes"
    )
    env = app_env(database_url, instance, COMPTOIR_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    began = time.time()
    totals = {"app": Result(), "bare": Result()}
    sent_to_app = 0
    processes = processes_for(options.clients)
    served = {"workers": options.workers, "threads": options.threads}
    try:
        with (
            gunicorn("wsgi:app", env=env, ready_path="/healthz", **served) as app_port,
            gunicorn(
                "bench.bare_webhook:app", env={}, ready_path="/healthz", **served
            ) as bare_port,
            process_pool(processes) as pool,
        ):
            ports = {"app": app_port, "bare": bare_port}
            runs = [(f"warmup_{case}", case, options.warmup) for case in ("app", "bare")]
            # Alternate the servers so that a machine whose load drifts favours neither.
            for round_number in range(options.rounds):
                runs += [(f"r{round_number}_{case}", case, options.seconds) for case in ports]
            for name, case, seconds in runs:
                result = run(
                    pool,
                    processes,
                    ports[case],
                    template,
                    name=name,
                    clients=options.clients,
                    seconds=seconds,
                )
                if not name.startswith("warmup"):
                    totals[case].merge(result, same_run=False)
                if case == "app":
                    sent_to_app += result.succeeded
    finally:
        removed = forget_jobs(REDIS_URL, began)
    shown = {"unit": "events", "count": "accepted"}
    app_result = figures("POST /webhooks/stripe", totals["app"], **shown)
    bare_result = figures("bare Flask endpoint", totals["bare"], **shown)
    webhooks_ratio = ratio(
        app_result, bare_result, key="events_per_second", name="webhooks/bare", goal=None
    )
    events, jobs = stored(database_url)
    lost = sent_to_app - events
    print(
        f"accepted {sent_to_app} events (warm-up included): {events} stored, {jobs} jobs owed, "
        f"{lost} lost; {removed} queued jobs taken back from RQ"
    )
    write_results(
        "webhooks",
        argv,
        settings={
            "clients": options.clients,
            "seconds": options.seconds,
            "rounds": options.rounds,
            "workers": options.workers,
            "threads": options.threads,
            "event_bytes": len(template.encode()),
        },
        runs=[app_result, bare_result],
        ratio=round(webhooks_ratio, 3),
        accepted=sent_to_app,
        stored=events,
        jobs_owed=jobs,
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
