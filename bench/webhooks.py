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

import argparse
import http.client
import json
import math
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import psycopg

from bench.support import PROJECT_ROOT, REDIS_URL, SECRET_KEY, create_database, gunicorn, machine

DATABASE = "comptoir_bench_webhooks"
WEBHOOK_SECRET = "whsec_comptoir_benchmark"  # noqa: S105 - a loopback-only benchmark
ACCOUNT = "acct_benchmark"
RESULTS = PROJECT_ROOT / "bench" / "results" / "webhooks.json"
ID_MARK = "evt_BENCHMARK_ID"


def migrate(database_url: str, instance: Path) -> None:
    from flask_migrate import upgrade

    from comptoir.app import create_app
    from comptoir.platform.db import db
    from comptoir.platform.settings import Environment, Settings

    app = create_app(
        Settings(
            env=Environment.DEVELOPMENT,
            database_url=database_url,
            secret_key=SECRET_KEY,
            instance_path=instance,
        )
    )
    with app.app_context():
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


@dataclass
class Result:
    accepted: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    windows: list[tuple[float, float]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(end - start for start, end in self.windows)

    @property
    def per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))] * 1000

    def merge(self, other: Result, *, same_run: bool = True) -> None:
        self.accepted += other.accepted
        self.errors += other.errors
        self.latencies.extend(other.latencies)
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        if not same_run or not self.windows:
            self.windows.extend(other.windows)
        elif other.windows:
            # Clients of one run: the run lasts from the first start to the last end.
            starts = [self.windows[-1][0], *(w[0] for w in other.windows)]
            ends = [self.windows[-1][1], *(w[1] for w in other.windows)]
            self.windows[-1] = (min(starts), max(ends))


@dataclass(frozen=True)
class Plan:
    port: int
    prefix: str  # unique per run and process: event ids never repeat
    template: str
    start: float
    stop: float


def _client(plan: Plan, index: int, out: Result) -> None:
    from comptoir.billing.stripe_fake.webhooks import sign

    connection = http.client.HTTPConnection("127.0.0.1", plan.port, timeout=30)
    while time.monotonic() < plan.start:
        time.sleep(0.001)
    first = time.monotonic()
    number = 0
    while time.monotonic() < plan.stop:
        number += 1
        body = plan.template.replace(ID_MARK, f"evt_{plan.prefix}_{index}_{number}").encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(body, WEBHOOK_SECRET),
        }
        started = time.perf_counter()
        try:
            connection.request("POST", "/webhooks/stripe", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status, answer = 0, b""
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", plan.port, timeout=30)
        out.statuses[status] = out.statuses.get(status, 0) + 1
        if status == 200 and b'"duplicate":false' in answer.replace(b" ", b""):
            out.accepted += 1
            out.latencies.append(time.perf_counter() - started)
        else:
            out.errors += 1
    out.windows.append((first, time.monotonic()))
    connection.close()


def _process(plan: Plan, clients: int) -> Result:
    results = [Result() for _ in range(clients)]
    threads = [threading.Thread(target=_client, args=(plan, n, results[n])) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = Result()
    for result in results:
        total.merge(result)
    return total


def drive(
    pool: ProcessPoolExecutor,
    processes: int,
    port: int,
    template: str,
    *,
    run: str,
    clients: int,
    seconds: float,
) -> Result:
    shares = [
        clients // processes + (1 if n < clients % processes else 0) for n in range(processes)
    ]
    start = time.monotonic() + 0.5
    futures = [
        pool.submit(
            _process,
            Plan(
                port=port,
                prefix=f"{run}_{n}",
                template=template,
                start=start,
                stop=start + seconds,
            ),
            share,
        )
        for n, share in enumerate(shares)
        if share
    ]
    total = Result()
    for future in futures:
        total.merge(future.result())
    return total


def figures(label: str, result: Result) -> dict[str, Any]:
    data = {
        "label": label,
        "events_per_second": round(result.per_second, 1),
        "p50_ms": round(result.percentile(0.50), 1),
        "p95_ms": round(result.percentile(0.95), 1),
        "accepted": result.accepted,
        "errors": result.errors,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
    }
    print(
        f"{label:<28} {data['events_per_second']:>8.1f} events/s   p50 {data['p50_ms']:>6.1f} ms"
        f"   p95 {data['p95_ms']:>6.1f} ms   errors {result.errors}",
        flush=True,
    )
    return data


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
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhooks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each server, alternated")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured time first")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    options = parser.parse_args(argv)

    instance = Path(tempfile.mkdtemp(prefix="comptoir-bench-webhooks-"))
    database_url = create_database(DATABASE)
    migrate(database_url, instance)
    template = event_template()
    print(
        f"{options.clients} clients, {options.rounds} x {options.seconds:g} s per server, "
        f"gunicorn gthread {options.workers} workers x {options.threads} threads; "
        f"events of {len(template.encode())} bytes"
    )
    env = {
        "COMPTOIR_ENV": "development",
        "COMPTOIR_DATABASE_URL": database_url,
        "COMPTOIR_REDIS_URL": REDIS_URL,
        "COMPTOIR_SECRET_KEY": SECRET_KEY,
        "COMPTOIR_INSTANCE_PATH": str(instance),
        "COMPTOIR_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    began = time.time()
    totals = {"app": Result(), "bare": Result()}
    sent_to_app = 0
    processes = min(options.clients, max(2, os.cpu_count() or 2))
    served = {"workers": options.workers, "threads": options.threads}
    try:
        with (
            gunicorn("wsgi:app", env=env, ready_path="/healthz", **served) as app_port,
            gunicorn(
                "bench.bare_webhook:app", env={}, ready_path="/healthz", **served
            ) as bare_port,
            ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool,
        ):
            ports = {"app": app_port, "bare": bare_port}
            for case in ("app", "bare"):
                warm = drive(
                    pool,
                    processes,
                    ports[case],
                    template,
                    run=f"warmup_{case}",
                    clients=options.clients,
                    seconds=options.warmup,
                )
                if case == "app":
                    sent_to_app += warm.accepted
            # Alternate the servers so that a machine whose load drifts favours neither.
            for round_number in range(options.rounds):
                for case in ("app", "bare"):
                    result = drive(
                        pool,
                        processes,
                        ports[case],
                        template,
                        run=f"r{round_number}_{case}",
                        clients=options.clients,
                        seconds=options.seconds,
                    )
                    totals[case].merge(result, same_run=False)
                    if case == "app":
                        sent_to_app += result.accepted
    finally:
        removed = forget_jobs(REDIS_URL, began)
    app_result = figures("POST /webhooks/stripe", totals["app"])
    bare_result = figures("bare Flask endpoint", totals["bare"])
    ratio = (
        app_result["events_per_second"] / bare_result["events_per_second"]
        if bare_result["events_per_second"]
        else 0.0
    )
    events, jobs = stored(database_url)
    lost = sent_to_app - events
    print(f"ratio webhooks/bare: {ratio:.2f}")
    print(
        f"accepted {sent_to_app} events (warm-up included): {events} stored, {jobs} jobs owed, "
        f"{lost} lost; {removed} queued jobs taken back from RQ"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(),
                "command": "python -m bench.webhooks " + " ".join(argv),
                "settings": {
                    "clients": options.clients,
                    "seconds": options.seconds,
                    "rounds": options.rounds,
                    "workers": options.workers,
                    "threads": options.threads,
                    "event_bytes": len(template.encode()),
                },
                "runs": [app_result, bare_result],
                "ratio": round(ratio, 3),
                "accepted": sent_to_app,
                "stored": events,
                "jobs_owed": jobs,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results written to {RESULTS.relative_to(PROJECT_ROOT)}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
