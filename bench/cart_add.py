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

import hashlib
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.loadgen import (
    KeepAlive,
    Result,
    client_shares,
    drive,
    process_pool,
    processes_for,
    wait_until,
)
from bench.support import (
    SECRET_KEY,
    app_env,
    create_app,
    create_database,
    figures,
    gunicorn,
    parser,
    ratio,
    write_results,
)

DATABASE = "comptoir_bench_cart"
ORG_SLUG = "bench-cart"
SHOP_SLUG = "boutique"
SPREAD_ARTICLES = 200
CARTS = 60_000
GOAL_RATIO = 0.8


def _token(number: int) -> str:
    return f"bench-cart-{number:06d}-{SECRET_KEY[:12]}"


def seed(database_url: str, instance: Path) -> tuple[int, list[int]]:
    """Migrate and fill the database; answers the hot article's id and the spread ones'."""
    from flask_migrate import upgrade

    from comptoir.platform.audit import Actor
    from comptoir.platform.db import db
    from comptoir.platform.tenancy import tenant_scope
    from comptoir.storefront import services, shops
    from comptoir.storefront.services import ArticleData
    from comptoir.storefront.shops import ShopData
    from comptoir.tenants.models import Organization

    app = create_app(database_url, instance)
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


@dataclass(frozen=True)
class Plan:
    port: int
    carts: list[tuple[int, int]]  # (cart id, token number), this process's share
    articles: list[int]
    clients: int  # this process's clients, who share its carts
    start: float
    stop: float


def _client(plan: Plan, index: int, out: Result) -> None:
    connection = KeepAlive(plan.port)
    mine = plan.carts[index :: plan.clients]
    first = wait_until(plan.start)
    for position, (cart_id, number) in enumerate(mine):
        if time.monotonic() >= plan.stop:
            break
        article = plan.articles[(index + position * plan.clients) % len(plan.articles)]
        body = json.dumps({"article_id": article, "quantity": 1})
        headers = {"Content-Type": "application/json", "X-Cart-Token": _token(number)}
        started = time.perf_counter()
        status, _ = connection.send(
            "POST", f"/api/v1/o/{ORG_SLUG}/carts/{cart_id}/lines", body=body, headers=headers
        )
        out.record(status, ok=status == 201, elapsed=time.perf_counter() - started)
    out.windows.append((first, time.monotonic()))
    connection.close()


def run(
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
    shares = client_shares(clients, processes)

    def plan_for(process: int, _first: int, start: float, stop: float) -> Plan:
        return Plan(
            port=port,
            carts=carts[process::processes],
            articles=articles,
            clients=shares[process],
            start=start,
            stop=stop,
        )

    return drive(pool, processes, _client, plan_for, clients=clients, seconds=seconds)


def main(argv: list[str]) -> int:
    options_parser = parser("cart_add", __doc__, seconds=10.0, clients=20)
    options_parser.add_argument(
        "--strict", action="store_true", help="exit 1 when the goal is missed"
    )
    options = options_parser.parse_args(argv)

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
    numbered = list(zip(ids, range(len(ids)), strict=True))
    # Carts are never reused: each case draws from its own share, run after run.
    shares = {
        "warmup": numbered[:2000],
        "hot": numbered[2000 : 2000 + (len(numbered) - 2000) // 2],
        "spread": numbered[2000 + (len(numbered) - 2000) // 2 :],
    }
    used = {"hot": 0, "spread": 0}
    totals = {"hot": Result(), "spread": Result()}
    processes = processes_for(options.clients)
    load = {"clients": options.clients}
    with (
        gunicorn(
            "wsgi:app",
            env=app_env(database_url, instance),
            workers=options.workers,
            threads=options.threads,
            ready_path="/healthz",
        ) as port,
        process_pool(processes) as pool,
    ):
        run(pool, processes, port, shares["warmup"], spread, **load, seconds=options.warmup)
        # Alternate the cases so that a machine whose load drifts does not favour either.
        for _round in range(options.rounds):
            for case, articles in (("hot", [hot]), ("spread", spread)):
                clear_holds(database_url)
                carts = shares[case][used[case] :]
                result = run(
                    pool, processes, port, carts, articles, **load, seconds=options.seconds
                )
                used[case] += result.succeeded + result.errors
                totals[case].merge(result, same_run=False)
    shown = {"unit": "adds", "count": "adds", "width": 24}
    hot_result = figures("one hot article", totals["hot"], **shown)
    spread_result = figures(f"{len(spread)} different articles", totals["spread"], **shown)
    hot_ratio = ratio(
        hot_result, spread_result, key="adds_per_second", name="hot/spread", goal=GOAL_RATIO
    )
    met = hot_ratio >= GOAL_RATIO
    write_results(
        "cart_add",
        argv,
        settings={
            "clients": options.clients,
            "seconds": options.seconds,
            "rounds": options.rounds,
            "workers": options.workers,
            "threads": options.threads,
            "spread_articles": len(spread),
        },
        runs=[hot_result, spread_result],
        ratio=round(hot_ratio, 3),
        goal_met=met,
    )
    return 1 if options.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
