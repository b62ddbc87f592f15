"""Inventory: how many units of an article or a variant can still be promised.

A *stock unit* is an article without variants, or one variant of an article (an article with
variants tracks its stock on each variant). Its availability is::

    available = stock - sold - active holds        (None when stock is NULL: unlimited)

``sold`` is a counter on the article or variant row, so taking stock can be one atomic conditional
``UPDATE … WHERE stock IS NULL OR stock - sold - <held> >= :quantity`` or a row lock on exactly the
article or variant concerned, never on the organization or the table. Holds of open carts count
until their expiry, whether or not a sweep has removed them: :func:`active_holds` is the one place
that sums them, and it leaves expired holds out by time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from comptoir.platform.db import db, utcnow
from comptoir.storefront.models import Article, ArticleVariant, StockHold


@dataclass(frozen=True, order=True)
class StockKey:
    article_id: int
    variant_id: int | None = None


def stock_keys(articles: Iterable[Article]) -> list[StockKey]:
    keys: list[StockKey] = []
    for article in articles:
        if article.variants:
            keys.extend(StockKey(article.id, variant.id) for variant in article.variants)
        else:
            keys.append(StockKey(article.id))
    return keys


def active_holds(keys: Sequence[StockKey], *, now: datetime | None = None) -> dict[StockKey, int]:
    """Units held by carts that have not expired at ``now``, per stock unit.

    One grouped query for the whole batch, whatever its size, so the shop page's statement count
    stays constant. Expired holds are left out by time, whether or not the sweep removed them.
    """
    if not keys:
        return {}
    wanted = set(keys)
    rows = db.session.execute(
        sa.select(StockHold.article_id, StockHold.variant_id, sa.func.sum(StockHold.quantity))
        .where(
            StockHold.article_id.in_(sorted({key.article_id for key in wanted})),
            StockHold.expires_at > (now or utcnow()),
        )
        .group_by(StockHold.article_id, StockHold.variant_id)
    ).all()
    held: dict[StockKey, int] = {}
    for article_id, variant_id, total in rows:
        key = StockKey(article_id, variant_id)
        if key in wanted:
            held[key] = int(total)
    return held


def _remaining(stock: int | None, sold: int, held: int) -> int | None:
    if stock is None:
        return None
    return max(stock - sold - held, 0)


def variant_available(variant: ArticleVariant, held: dict[StockKey, int]) -> int | None:
    key = StockKey(variant.article_id, variant.id)
    return _remaining(variant.stock, variant.sold, held.get(key, 0))


def article_available(article: Article, held: dict[StockKey, int]) -> int | None:
    """Units of the article left (the sum over its variants), or None when unlimited."""
    if not article.variants:
        return _remaining(article.stock, article.sold, held.get(StockKey(article.id), 0))
    total = 0
    for variant in article.variants:
        remaining = variant_available(variant, held)
        if remaining is None:
            return None
        total += remaining
    return total


@dataclass(frozen=True)
class Availability:
    """Availability of a batch of articles, computed with one holds query for the whole batch."""

    held: dict[StockKey, int]

    @classmethod
    def of(cls, articles: Sequence[Article], *, now: datetime | None = None) -> Availability:
        return cls(held=active_holds(stock_keys(articles), now=now or utcnow()))

    def article(self, article: Article) -> int | None:
        return article_available(article, self.held)

    def variant(self, variant: ArticleVariant) -> int | None:
        return variant_available(variant, self.held)

    def sold_out(self, article: Article) -> bool:
        return self.article(article) == 0
