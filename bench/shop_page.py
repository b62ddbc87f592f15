"""The shop page under load, against a bare Flask endpoint served the same way.

Seeds an organization with 500 articles and 20 tags into a dedicated PostgreSQL database, serves
the app with gunicorn on a free loopback port, and in the same run serves a bare Flask endpoint
with the same gunicorn settings. Both are driven by 20 concurrent keep-alive clients for a
bounded time; the shop clients walk the shop's 20 categories. Prints requests per second and p95
latency for each, and the ratio. Goal: shop >= 0.25 x bare, shop p95 < 100 ms.

    python -m bench.shop_page [--seconds 20] [--clients 20] [--workers 2] [--threads 4]
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis import Redis

from bench import loadgen
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

DATABASE = "comptoir_bench_shop"
ORG_SLUG = "bench"
SHOP_SLUG = "boutique"
ARTICLES = 500
TAGS = 20
IMAGES = 40
GOAL_RATIO = 0.25
GOAL_P95_MS = 100.0


def seed(database_url: str, instance: Path) -> list[str]:
    """Migrate the database and fill it; answers the shop paths the clients will request."""
    from flask_migrate import upgrade
    from PIL import Image

    from comptoir.platform.audit import Actor
    from comptoir.platform.db import db
    from comptoir.platform.tenancy import tenant_scope
    from comptoir.storefront import services, shops
    from comptoir.storefront.services import ArticleData, VariantData
    from comptoir.storefront.shops import ShopData
    from comptoir.tenants.models import Organization

    app = create_app(database_url, instance)
    actor = Actor.system("benchmark")
    rng = random.Random(2026)
    with app.app_context():
        upgrade()
        organization = Organization(slug=ORG_SLUG, name="Club de natation du benchmark")
        db.session.add(organization)
        db.session.commit()
        with tenant_scope(organization.id):
            tags = [
                services.create_tag(
                    organization=organization,
                    actor=actor,
                    name_fr=f"Catégorie {n + 1}",
                    name_en=f"Category {n + 1}",
                    color="#0b57d0",
                )
                for n in range(TAGS)
            ]
            db.session.flush()
            for n in range(ARTICLES):
                second = [tags[rng.randrange(TAGS)].id] if n % 4 == 0 else []
                variants = (
                    [VariantData(name_fr=s, name_en=s, stock=rng.randrange(0, 10)) for s in "SML"]
                    if n % 5 == 0
                    else None
                )
                article = services.create_article(
                    organization=organization,
                    actor=actor,
                    data=ArticleData(
                        name_fr=f"Article {n + 1:03d}",
                        name_en=f"Item {n + 1:03d}",
                        description_fr="Bonnet, lunettes ou cours de natation.",
                        description_en="A cap, goggles or a swimming course.",
                        price=500 + rng.randrange(0, 20000),
                        sku=f"BENCH-{n + 1:04d}",
                        stock=None if n % 3 else rng.randrange(0, 30),
                        tag_ids=list(dict.fromkeys([tags[n % TAGS].id, *second])),
                        variants=variants,
                    ),
                )
                if n < IMAGES:
                    buffer = io.BytesIO()
                    Image.new("RGB", (800, 600), (n * 5 % 255, 87, 208)).save(buffer, "JPEG")
                    buffer.seek(0)
                    services.add_image(
                        organization=organization, actor=actor, article=article, stream=buffer
                    )
                if n % 50 == 0:
                    db.session.flush()
            shops.create_shop(
                organization=organization,
                actor=actor,
                data=ShopData(
                    slug=SHOP_SLUG,
                    name_fr="Boutique du club",
                    name_en="Club shop",
                    customer_tag_ids=[tag.id for tag in tags],
                ),
            )
            db.session.commit()
            tag_ids = [tag.id for tag in tags]
        db.session.remove()
        # As autovacuum would after a bulk load: the planner needs the tables' statistics.
        with db.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    base = f"/o/{ORG_SLUG}/{SHOP_SLUG}/"
    return [base] + [f"{base}?category={tag_id}" for tag_id in tag_ids]


def _forget_cached_pages() -> None:
    redis = Redis.from_url(REDIS_URL)
    for key in redis.scan_iter(match="comptoir:shop-page:*", count=1000):
        redis.delete(key)


def measure(
    label: str, target: str, env: dict[str, str], paths: list[str], options: argparse.Namespace
) -> dict[str, Any]:
    with gunicorn(
        target, env=env, workers=options.workers, threads=options.threads, ready_path=paths[0]
    ) as port:
        loadgen.run(port, paths, concurrency=options.clients, seconds=options.warmup)
        result = loadgen.run(port, paths, concurrency=options.clients, seconds=options.seconds)
    return figures(label, result, unit="requests", count="requests")


def main(argv: list[str]) -> int:
    options_parser = parser("shop_page", __doc__, seconds=20.0, clients=20, rounds=False)
    options_parser.add_argument(
        "--no-uncached", action="store_true", help="skip the run without cache"
    )
    options_parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a goal is missed"
    )
    options = options_parser.parse_args(argv)

    instance = Path(tempfile.mkdtemp(prefix="comptoir-bench-"))
    started = time.monotonic()
    database_url = create_database(DATABASE)
    paths = seed(database_url, instance)
    print(f"seeded {ARTICLES} articles and {TAGS} tags in {time.monotonic() - started:.1f} s")
    print(
        f"{options.clients} clients, {options.seconds:g} s per server, gunicorn gthread "
        f"{options.workers} workers x {options.threads} threads"
    )
    _forget_cached_pages()
    shop_env = app_env(database_url, instance)
    shop = measure("shop page", "bench.shop_wsgi:app", shop_env, paths, options)
    bare = measure("bare Flask endpoint", "bench.bare_app:app", {}, ["/"], options)
    runs = [shop, bare]
    if not options.no_uncached:
        uncached_env = {**shop_env, "BENCH_SHOP_CACHE_SECONDS": "0"}
        runs.append(
            measure("shop page, no page cache", "bench.shop_wsgi:app", uncached_env, paths, options)
        )

    shop_ratio = ratio(shop, bare, key="requests_per_second", name="shop/bare", goal=GOAL_RATIO)
    ratio_ok = shop_ratio >= GOAL_RATIO
    p95_ok = shop["p95_ms"] < GOAL_P95_MS
    verdict = "met" if p95_ok else "MISSED"
    print(f"shop p95: {shop['p95_ms']:.1f} ms (goal < {GOAL_P95_MS:g} ms) {verdict}")
    write_results(
        "shop_page",
        argv,
        settings={
            "articles": ARTICLES,
            "tags": TAGS,
            "clients": options.clients,
            "seconds": options.seconds,
            "workers": options.workers,
            "threads": options.threads,
        },
        runs=runs,
        ratio=round(shop_ratio, 3),
        goals_met=ratio_ok and p95_ok,
    )
    return 1 if options.strict and not (ratio_ok and p95_ok) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
