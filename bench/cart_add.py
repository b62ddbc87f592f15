"""Add-to-cart throughput: one hot article against 200 different articles, same server, same run.

Every add locks the row of the article it holds stock of (see ``comptoir.storefront.holds``). When
all customers want the same article, those locks queue; when they want 200 different articles,
they never meet. The ratio hot/spread says what contention costs. Goal: >= 0.8.

Seeds a dedicated PostgreSQL database with an organization, a shop, one article with a large
stock and 200 more, and enough open carts that each request adds to a cart of its own (a new
line and a new hold, as a customer's first add). Serves the app with gunicorn (gthread) on a
free loopback port and drives ``POST /api/v1/o/{org}/carts/{id}/lines`` with concurrent
keep-alive clients spread over a few processes. The two cases alternate (``--rounds``), and
before each run the holds are cleared so that every run starts from the same state.

    python -m bench.cart_add [--seconds 10] [--rounds 2] [--clients 20] [--workers 2] [--threads 4]
"""

from __future__ import annotations

import argparse
import hashlib
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

DATABASE = "comptoir_bench_cart"
ORG_SLUG = "bench-cart"
SHOP_SLUG = "boutique"
SPREAD_ARTICLES = 200
CARTS = 60_000
RESULTS = PROJECT_ROOT / "bench" / "results" / "cart_add.json"
GOAL_RATIO = 0.8


def _token(number: int) -> str:
    return f"bench-cart-{number:06d}-{SECRET_KEY[:12]}"


def seed(database_url: str, instance: Path) -> tuple[int, list[int]]:
    """Migrate and fill the database; answers the hot article's id and the spread ones'."""
    from flask_migrate import upgrade

    from comptoir.app import create_app
    from comptoir.platform.audit import Actor
    from comptoir.platform.db import db
    from comptoir.platform.settings import Environment, Settings
    from comptoir.platform.tenancy import tenant_scope
    from comptoir.storefront import services, shops
    from comptoir.storefront.services import ArticleData
    from comptoir.storefront.shops import ShopData
    from comptoir.tenants.models import Organization

    app = create_app(
        Settings(
            env=Environment.DEVELOPMENT,
            database_url=database_url,
            secret_key=SECRET_KEY,
            instance_path=instance,
        )
    )
    actor = Actor.system("benchmark")
    with app.app_context():
        upgrade()
        organization = Organization(slug=ORG_SLUG, name="Club du benchmark des paniers")
        db.session.add(organization)
        db.session.commit()
        with tenant_scope(organization.id):
            tag = services.create_tag(organization=organization, actor=actor, name_fr="Boutique")
            db.session.flush()
            articles = [
                services.create_article(
                    organization=organization,
                    actor=actor,
                    data=ArticleData(
                        name_fr=f"Article {n:03d}",
                        price=1500,
                        stock=10_000_000,
                        tag_ids=[tag.id],
                    ),
                )
                for n in range(SPREAD_ARTICLES + 1)
            ]
            shop = shops.create_shop(
                organization=organization,
                actor=actor,
                data=ShopData(
                    slug=SHOP_SLUG,
                    name_fr="Boutique",
                    cart_minutes=120,
                    customer_tag_ids=[tag.id],
                ),
            )
            db.session.commit()
            ids = [article.id for article in articles]
            organization_id, shop_id = organization.id, shop.id
        db.session.remove()
    with psycopg.connect(database_url) as connection:
        connection.execute("SELECT set_config('comptoir.unscoped', 'on', false)")
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO carts (organization_id, shop_id, token_hash, status, expires_at, "
                "renewals, locale, currency, created_at) "
                "VALUES (%s, %s, %s, 'active', now() + interval '2 hours', 0, 'fr', 'CAD', now())",
                [
                    (organization_id, shop_id, hashlib.sha256(_token(n).encode()).hexdigest())
                    for n in range(CARTS)
                ],
            )
        connection.execute("ANALYZE")
    return ids[0], ids[1:]


def clear_holds(database_url: str) -> None:
    """Empty every cart (their holds go with their lines), so each case starts alike."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("SELECT set_config('comptoir.unscoped', 'on', false)")
        connection.execute("DELETE FROM cart_lines")
        connection.execute("VACUUM ANALYZE cart_lines")
        connection.execute("VACUUM ANALYZE stock_holds")


def cart_ids(database_url: str) -> list[int]:
    with psycopg.connect(database_url) as connection:
        connection.execute("SELECT set_config('comptoir.unscoped', 'on', false)")
        rows = connection.execute("SELECT id FROM carts ORDER BY id").fetchall()
    return [row[0] for row in rows]


# --------------------------------------------------------------------------- load


@dataclass
class Result:
    created: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    # The time the clients were really sending (time.monotonic()), per run; a slow process start
    # must not count as idle time.
    windows: list[tuple[float, float]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(end - start for start, end in self.windows)

    @property
    def per_second(self) -> float:
        return self.created / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))] * 1000

    def merge(self, other: Result, *, same_run: bool = True) -> None:
        self.created += other.created
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
    carts: list[tuple[int, int]]  # (cart id, token number), this process's share
    articles: list[int]
    start: float
    stop: float


def _client(plan: Plan, index: int, clients: int, out: Result) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", plan.port, timeout=30)
    mine = plan.carts[index::clients]
    while time.monotonic() < plan.start:
        time.sleep(0.001)
    first = time.monotonic()
    for position, (cart_id, number) in enumerate(mine):
        if time.monotonic() >= plan.stop:
            break
        article = plan.articles[(index + position * clients) % len(plan.articles)]
        body = json.dumps({"article_id": article, "quantity": 1})
        headers = {"Content-Type": "application/json", "X-Cart-Token": _token(number)}
        started = time.perf_counter()
        try:
            connection.request(
                "POST", f"/api/v1/o/{ORG_SLUG}/carts/{cart_id}/lines", body=body, headers=headers
            )
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", plan.port, timeout=30)
        out.statuses[status] = out.statuses.get(status, 0) + 1
        if status == 201:
            out.created += 1
            out.latencies.append(time.perf_counter() - started)
        else:
            out.errors += 1
    out.windows.append((first, time.monotonic()))
    connection.close()


def _process(plan: Plan, clients: int) -> Result:
    results = [Result() for _ in range(clients)]
    threads = [
        threading.Thread(target=_client, args=(plan, n, clients, results[n]))
        for n in range(clients)
    ]
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
    carts: list[tuple[int, int]],
    articles: list[int],
    *,
    clients: int,
    seconds: float,
) -> Result:
    """One run: ``clients`` closed-loop clients for ``seconds``, each add on a cart of its own."""
    shares = [
        clients // processes + (1 if n < clients % processes else 0) for n in range(processes)
    ]
    start = time.monotonic() + 0.5
    futures = [
        pool.submit(
            _process,
            Plan(
                port=port,
                carts=carts[n::processes],
                articles=articles,
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
        "adds_per_second": round(result.per_second, 1),
        "p50_ms": round(result.percentile(0.50), 1),
        "p95_ms": round(result.percentile(0.95), 1),
        "adds": result.created,
        "errors": result.errors,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
    }
    print(
        f"{label:<24} {data['adds_per_second']:>8.1f} adds/s   p50 {data['p50_ms']:>6.1f} ms   "
        f"p95 {data['p95_ms']:>6.1f} ms   errors {result.errors}",
        flush=True,
    )
    return data


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cart_add", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each case, alternated")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured time first")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the goal is missed")
    options = parser.parse_args(argv)

    instance = Path(tempfile.mkdtemp(prefix="comptoir-bench-cart-"))
    started = time.monotonic()
    database_url = create_database(DATABASE)
    hot, spread = seed(database_url, instance)
    ids = cart_ids(database_url)
    print(
        f"seeded 1 + {len(spread)} articles and {len(ids)} carts in "
        f"{time.monotonic() - started:.1f} s"
    )
    print(
        f"{options.clients} clients, {options.rounds} x {options.seconds:g} s per case, "
        f"gunicorn gthread {options.workers} workers x {options.threads} threads"
    )
    env = {
        "COMPTOIR_ENV": "development",
        "COMPTOIR_DATABASE_URL": database_url,
        "COMPTOIR_REDIS_URL": REDIS_URL,
        "COMPTOIR_SECRET_KEY": SECRET_KEY,
        "COMPTOIR_INSTANCE_PATH": str(instance),
    }
    numbered = list(zip(ids, range(len(ids)), strict=True))
    # Carts are never reused: each case draws from its own share, run after run.
    shares = {
        "warmup": numbered[:2000],
        "hot": numbered[2000 : 2000 + (len(numbered) - 2000) // 2],
        "spread": numbered[2000 + (len(numbered) - 2000) // 2 :],
    }
    used = {"hot": 0, "spread": 0}
    totals = {"hot": Result(), "spread": Result()}
    processes = min(options.clients, max(2, os.cpu_count() or 2))
    with (
        gunicorn(
            "wsgi:app",
            env=env,
            workers=options.workers,
            threads=options.threads,
            ready_path="/healthz",
        ) as port,
        ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool,
    ):
        drive(
            pool,
            processes,
            port,
            shares["warmup"],
            spread,
            clients=options.clients,
            seconds=options.warmup,
        )
        # Alternate the cases so that a machine whose load drifts does not favour either.
        for _round in range(options.rounds):
            for case, articles in (("hot", [hot]), ("spread", spread)):
                clear_holds(database_url)
                carts = shares[case][used[case] :]
                result = drive(
                    pool,
                    processes,
                    port,
                    carts,
                    articles,
                    clients=options.clients,
                    seconds=options.seconds,
                )
                used[case] += result.created + result.errors
                totals[case].merge(result, same_run=False)
    hot_result = figures("one hot article", totals["hot"])
    spread_result = figures(f"{len(spread)} different articles", totals["spread"])
    ratio = (
        hot_result["adds_per_second"] / spread_result["adds_per_second"]
        if spread_result["adds_per_second"]
        else 0.0
    )
    met = ratio >= GOAL_RATIO
    print(f"ratio hot/spread: {ratio:.2f} (goal >= {GOAL_RATIO}) {'met' if met else 'MISSED'}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(),
                "command": "python -m bench.cart_add " + " ".join(argv),
                "settings": {
                    "clients": options.clients,
                    "seconds": options.seconds,
                    "rounds": options.rounds,
                    "workers": options.workers,
                    "threads": options.threads,
                    "spread_articles": len(spread),
                },
                "runs": [hot_result, spread_result],
                "ratio": round(ratio, 3),
                "goal_met": met,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results written to {RESULTS.relative_to(PROJECT_ROOT)}")
    return 1 if options.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
