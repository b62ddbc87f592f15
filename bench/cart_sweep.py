"""The cart sweep's speed: expired holds deleted per second, against one raw ``DELETE``.

The sweep (``comptoir.storefront.holds.sweep_expired``) deletes in batches of 5,000 picked with
``FOR UPDATE SKIP LOCKED`` and commits after each, so that it never waits for a cart and no cart
waits long for it. This measures what that care costs: the same expired holds are deleted once by
the sweep and once by a single ``DELETE … WHERE expires_at <= now()``, in the same run on the same
database. Goal: the sweep's rate >= 0.5 x the raw delete's.

    python -m bench.cart_sweep [--holds 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.support import create_app, create_database, write_results

DATABASE = "comptoir_bench_sweep"
GOAL_RATIO = 0.5


def seed(database_url: str, instance: Path, holds: int) -> Any:
    """Migrate, create an organization, a shop, an article and ``holds`` expired carts."""
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
        organization = Organization(slug="bench-sweep", name="Club du benchmark du balayage")
        db.session.add(organization)
        db.session.commit()
        with tenant_scope(organization.id):
            tag = services.create_tag(organization=organization, actor=actor, name_fr="Boutique")
            db.session.flush()
            article = services.create_article(
                organization=organization,
                actor=actor,
                data=ArticleData(name_fr="Bonnet", price=1500, tag_ids=[tag.id]),
            )
            shop = shops.create_shop(
                organization=organization,
                actor=actor,
                data=ShopData(slug="boutique", name_fr="Boutique", customer_tag_ids=[tag.id]),
            )
            db.session.commit()
            ids = (organization.id, shop.id, article.id)
        db.session.remove()
    with psycopg.connect(database_url) as connection:
        connection.execute("SELECT set_config('comptoir.unscoped', 'on', false)")
        # The carts are already marked expired: only the holds are left to delete, by both.
        connection.execute(
            "INSERT INTO carts (organization_id, shop_id, token_hash, status, expires_at, "
            "renewals, locale, currency, created_at) "
            "SELECT %s, %s, md5('sweep-' || i) || md5('bench-' || i), 'expired', "
            "now() - interval '1 minute', 0, 'fr', 'CAD', now() - interval '1 hour' "
            "FROM generate_series(1, %s) AS i",
            [ids[0], ids[1], holds],
        )
        connection.execute(
            "INSERT INTO cart_lines (organization_id, cart_id, article_id, quantity, unit_price, "
            "original_unit_price, created_at) "
            "SELECT organization_id, id, %s, 1, 1500, 1500, now() FROM carts",
            [ids[2]],
        )
    return app


def fill_holds(database_url: str) -> int:
    """One expired hold per cart line, as the carts left them."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("SELECT set_config('comptoir.unscoped', 'on', false)")
        connection.execute(
            "INSERT INTO stock_holds (organization_id, cart_id, cart_line_id, article_id, "
            "variant_id, quantity, expires_at) "
            "SELECT l.organization_id, l.cart_id, l.id, l.article_id, NULL, 1, c.expires_at "
            "FROM cart_lines l JOIN carts c ON c.id = l.cart_id"
        )
        connection.execute("VACUUM ANALYZE stock_holds")
        row = connection.execute("SELECT count(*) FROM stock_holds").fetchone()
    return int(row[0]) if row else 0


def run_sweep(app: Any) -> tuple[int, float]:
    from comptoir.platform.db import db
    from comptoir.storefront.holds import sweep_expired

    with app.app_context():
        started = time.perf_counter()
        result = sweep_expired()
        elapsed = time.perf_counter() - started
        db.session.remove()
    return result.holds_deleted, elapsed


def run_raw_delete(database_url: str) -> tuple[int, float]:
    with psycopg.connect(database_url) as connection:
        connection.execute("SELECT set_config('comptoir.unscoped', 'on', false)")
        connection.commit()
        started = time.perf_counter()
        deleted = connection.execute("DELETE FROM stock_holds WHERE expires_at <= now()").rowcount
        connection.commit()
        elapsed = time.perf_counter() - started
    return deleted, elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cart_sweep", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--holds", type=int, default=200_000, help="expired holds per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each, alternated")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the goal is missed")
    options = parser.parse_args(argv)

    instance = Path(tempfile.mkdtemp(prefix="comptoir-bench-sweep-"))
    started = time.monotonic()
    database_url = create_database(DATABASE)
    app = seed(database_url, instance, options.holds)
    print(f"seeded {options.holds} expired carts in {time.monotonic() - started:.1f} s")
    totals = {"sweep": [0, 0.0], "raw DELETE": [0, 0.0]}
    for _round in range(options.rounds):
        for label in ("sweep", "raw DELETE"):
            filled = fill_holds(database_url)
            if label == "sweep":
                deleted, elapsed = run_sweep(app)
            else:
                deleted, elapsed = run_raw_delete(database_url)
            if deleted != filled:
                print(f"{label}: deleted {deleted} of {filled} holds", file=sys.stderr)
                return 1
            totals[label][0] += deleted
            totals[label][1] += elapsed
            print(f"  {label:<11} {deleted} holds in {elapsed:.2f} s", flush=True)
    rates = {label: count / seconds for label, (count, seconds) in totals.items()}
    for label, rate in rates.items():
        print(f"{label:<12} {rate:>12,.0f} holds/s")
    ratio = rates["sweep"] / rates["raw DELETE"]
    met = ratio >= GOAL_RATIO
    print(f"ratio sweep/raw: {ratio:.2f} (goal >= {GOAL_RATIO}) {'met' if met else 'MISSED'}")
    write_results(
        "cart_sweep",
        argv,
        settings={"holds": options.holds, "rounds": options.rounds, "batch": 5000},
        holds_per_second={label: round(rate) for label, rate in rates.items()},
        ratio=round(ratio, 3),
        goal_met=met,
    )
    return 1 if options.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
