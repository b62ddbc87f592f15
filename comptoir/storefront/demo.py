"""The demo club's catalog: courses, swim caps in sizes, goggles, and counter merchandise.

:func:`seed_catalog` is idempotent: tags are found by French name, articles by SKU and the shop
by slug, so running the demo seed again changes nothing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import sqlalchemy as sa
from PIL import Image, ImageDraw

from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.tenancy import tenant_scope
from comptoir.storefront import services, shops
from comptoir.storefront.models import Article, Tag
from comptoir.storefront.services import ArticleData, VariantData
from comptoir.storefront.shops import ShopData
from comptoir.tenants.models import Organization

SHOP_SLUG = "boutique"


@dataclass(frozen=True)
class DemoTag:
    key: str
    name_fr: str
    name_en: str
    color: str


TAGS = (
    DemoTag("courses", "Cours", "Courses", "#0b57d0"),
    DemoTag("caps", "Bonnets", "Swim caps", "#1e6b34"),
    DemoTag("goggles", "Lunettes", "Goggles", "#6a1b9a"),
    DemoTag("counter", "Comptoir", "Counter", "#a34700"),
)


@dataclass(frozen=True)
class DemoArticle:
    sku: str
    tag: str
    name_fr: str
    name_en: str
    description_fr: str
    description_en: str
    price: int
    color: tuple[int, int, int]
    stock: int | None = None
    max_per_order: int | None = None
    tax_category: str = "standard"
    variants: tuple[tuple[str, str, str, int | None, int | None], ...] = ()


ARTICLES = (
    DemoArticle(
        "COURS-ENF-AUT",
        "courses",
        "Cours pour enfants (6-12 ans), automne",
        "Children's lessons (6-12), fall",
        "Dix semaines, le samedi matin. Bonnet fourni.",
        "Ten weeks, Saturday mornings. Cap included.",
        16500,
        (11, 87, 208),
        stock=24,
        max_per_order=3,
        tax_category="exempt",
    ),
    DemoArticle(
        "COURS-ADU-AUT",
        "courses",
        "Cours pour adultes, automne",
        "Adult lessons, fall",
        "Dix semaines, le mardi soir, tous niveaux.",
        "Ten weeks, Tuesday evenings, all levels.",
        19500,
        (20, 60, 160),
        stock=16,
        max_per_order=2,
    ),
    DemoArticle(
        "MAITRES-AUT",
        "courses",
        "Maîtres-nageurs : entraînements d'automne",
        "Masters swimming: fall practices",
        "Trois entraînements par semaine avec entraîneur.",
        "Three coached practices a week.",
        32000,
        (40, 40, 120),
    ),
    DemoArticle(
        "BONNET-SIL",
        "caps",
        "Bonnet en silicone du club",
        "Club silicone cap",
        "Silicone résistant, logo des Dauphins.",
        "Durable silicone with the Dolphins logo.",
        1200,
        (30, 107, 52),
        variants=(
            ("BONNET-SIL-E", "Enfant", "Child", None, 15),
            ("BONNET-SIL-J", "Junior", "Junior", None, 10),
            ("BONNET-SIL-A", "Adulte", "Adult", 1400, 3),
        ),
    ),
    DemoArticle(
        "BONNET-TIS",
        "caps",
        "Bonnet en tissu",
        "Fabric cap",
        "Doux et confortable pour les cours.",
        "Soft and comfortable for lessons.",
        900,
        (60, 140, 90),
        stock=0,
    ),
    DemoArticle(
        "LUNETTES-ENT",
        "goggles",
        "Lunettes d'entraînement",
        "Training goggles",
        "Anti-buée, courroie ajustable.",
        "Anti-fog, adjustable strap.",
        2499,
        (106, 27, 154),
        variants=(
            ("LUNETTES-ENT-F", "Fumé", "Smoke", None, 8),
            ("LUNETTES-ENT-B", "Bleu", "Blue", None, 12),
            ("LUNETTES-ENT-M", "Miroir", "Mirror", 2999, 4),
        ),
    ),
    DemoArticle(
        "LUNETTES-ENF",
        "goggles",
        "Lunettes pour enfants",
        "Children's goggles",
        "Petites tailles, verres teintés.",
        "Small sizes, tinted lenses.",
        1599,
        (150, 60, 190),
        stock=20,
    ),
    DemoArticle(
        "SERVIETTE",
        "counter",
        "Serviette du club",
        "Club towel",
        "Vendue à l'accueil seulement.",
        "Sold at the front desk only.",
        2500,
        (163, 71, 0),
        stock=20,
    ),
    DemoArticle(
        "BOUTEILLE",
        "counter",
        "Bouteille d'eau",
        "Water bottle",
        "Acier inoxydable, 750 ml.",
        "Stainless steel, 750 ml.",
        1500,
        (120, 60, 10),
    ),
)


def _picture(color: tuple[int, int, int]) -> io.BytesIO:
    """A plain placeholder picture: a coloured card with a wave."""
    image = Image.new("RGB", (800, 600), color)
    draw = ImageDraw.Draw(image)
    for offset in range(0, 800, 80):
        draw.arc((offset - 40, 380, offset + 40, 460), 180, 360, fill=(255, 255, 255), width=8)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    buffer.seek(0)
    return buffer


def _tags(organization: Organization, actor: Actor) -> dict[str, int]:
    found: dict[str, int] = {}
    for tag in TAGS:
        tag_id = db.session.execute(
            sa.select(Tag.id).where(Tag.name_fr == tag.name_fr)
        ).scalar_one_or_none()
        if tag_id is None:
            tag_id = services.create_tag(
                organization=organization,
                actor=actor,
                name_fr=tag.name_fr,
                name_en=tag.name_en,
                color=tag.color,
            ).id
        found[tag.key] = tag_id
    return found


def _articles(organization: Organization, actor: Actor, tags: dict[str, int]) -> None:
    for item in ARTICLES:
        exists = db.session.execute(
            sa.select(Article.id).where(Article.sku == item.sku)
        ).scalar_one_or_none()
        if exists is not None:
            continue
        article = services.create_article(
            organization=organization,
            actor=actor,
            data=ArticleData(
                name_fr=item.name_fr,
                name_en=item.name_en,
                description_fr=item.description_fr,
                description_en=item.description_en,
                price=item.price,
                tax_category=item.tax_category,
                sku=item.sku,
                stock=item.stock,
                max_per_order=item.max_per_order,
                tag_ids=[tags[item.tag]],
                variants=[
                    VariantData(name_fr=fr, name_en=en, sku=sku, price=price, stock=stock)
                    for sku, fr, en, price, stock in item.variants
                ]
                or None,
            ),
        )
        services.add_image(
            organization=organization,
            actor=actor,
            article=article,
            stream=_picture(item.color),
            alt_fr=item.name_fr,
            alt_en=item.name_en,
        )


def seed_catalog(organization: Organization, actor: Actor | None = None) -> None:
    """Tags, articles and the public shop (with a staff-only category) of the demo club."""
    actor = actor or Actor.system("demo")
    with tenant_scope(organization.id):
        tags = _tags(organization, actor)
        _articles(organization, actor, tags)
        if shops.find_shop(SHOP_SLUG) is None:
            shops.create_shop(
                organization=organization,
                actor=actor,
                data=ShopData(
                    slug=SHOP_SLUG,
                    name_fr="Boutique du club",
                    name_en="Club shop",
                    intro_fr="Inscriptions aux cours et équipement de natation.",
                    intro_en="Lesson registrations and swimming gear.",
                    customer_tag_ids=[tags["courses"], tags["caps"], tags["goggles"]],
                    staff_tag_ids=[tags["counter"]],
                ),
            )
        db.session.flush()
