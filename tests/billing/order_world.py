"""An organization to test orders against: Québec taxes, a shop offering offline and e-Transfer,
articles with and without stock (one with variants), staff of every role, API keys, customers,
and another organization. Built through the services and committed; described by plain ids.

``place`` puts an order through billing directly (no cart), for the billing services' tests;
the checkout tests go through carts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Flask

from comptoir.billing.models import CreditNote, Invoice, Order, Payment, Refund
from comptoir.billing.orders import LineInput, NewOrder, OwnerInput, place_order
from comptoir.billing.payment_methods import Audience, CheckoutPayment
from comptoir.billing.taxes import apply_province_preset
from comptoir.platform.audit import Actor, AuditLog
from comptoir.platform.db import db
from comptoir.platform.mail import MailMessage
from comptoir.platform.tenancy import tenant_scope, unscoped
from comptoir.storefront import services, shops
from comptoir.storefront.models import Article, ArticleVariant
from comptoir.storefront.services import ArticleData, VariantData
from comptoir.storefront.shops import ShopData
from comptoir.tenants.models import Organization, Role
from tests.factories import CustomerFactory, OrganizationFactory, api_key, staff

SET_UP = Actor(label="set-up", role=Role.OWNER.value)
OWNER = Actor(label="owner@club.example", role=Role.OWNER.value)
ATTENDANT = Actor(label="attendant@club.example", role=Role.ATTENDANT.value)
CUSTOMER = Actor(label="anonymous")
ETRANSFER = {
    "email": "paiements@club.example",
    "instructions_fr": "Indiquez {{ order_code }} dans le message.",
    "instructions_en": "Write {{ order_code }} in the message.",
    "security_question": "Couleur du bonnet?",
    "security_answer": "bleu",
    "auto_deposit": False,
    "reminder_hours": 48,
    "cancel_hours": 96,
}


@contextmanager
def database(app: Flask) -> Iterator[None]:
    with app.app_context(), unscoped():
        try:
            yield
        finally:
            db.session.remove()


@contextmanager
def scope(app: Flask, organization_id: int) -> Iterator[Organization]:
    """An app context in the organization's scope, with the organization loaded."""
    with app.app_context(), tenant_scope(organization_id):
        try:
            organization = db.session.get(Organization, organization_id)
            assert organization is not None
            yield organization
        finally:
            db.session.remove()


@dataclass
class OrderWorld:
    org_slug: str
    organization_id: int
    shop_slug: str
    shop_id: int
    other_org_slug: str
    other_organization_id: int
    # cap: $15 stock 10; course: $100 unlimited; suit: variants (small stock 2, large stock 5
    # at $45); exempt: $10 no tax
    articles: dict[str, int] = field(default_factory=dict)
    variants: dict[str, int] = field(default_factory=dict)
    logins: dict[str, str] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)
    other_customer: int = 0
    # key -> the values a line of it copies (name, price, tax category, sku)
    catalog: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"/api/v1/o/{self.org_slug}"

    @property
    def shop_url(self) -> str:
        return f"/o/{self.org_slug}/{self.shop_slug}"


def build_order_world(
    app: Flask, *, communication: dict[str, Any] | None = None, slug: str = "club-orders"
) -> OrderWorld:
    with database(app):
        organization = OrganizationFactory(
            slug=slug, name="Club aquatique", email="info@club.example", default_locale="fr"
        )
        other = OrganizationFactory(slug=f"{slug}-other", name="Autre club")
        world = OrderWorld(
            org_slug=organization.slug,
            organization_id=organization.id,
            shop_slug="boutique",
            shop_id=0,
            other_org_slug=other.slug,
            other_organization_id=other.id,
        )
        for name, role in (
            ("owner", Role.OWNER),
            ("admin", Role.ADMIN),
            ("attendant", Role.ATTENDANT),
        ):
            user = staff(organization, role, email=f"{name}@{slug}.example", locale="fr")
            world.logins[name] = user.get_id()
            world.emails[name] = user.email
            world.user_ids[name] = user.id
            world.keys[name] = api_key(organization, role)
        other_owner = staff(other, Role.OWNER, email=f"owner@{slug}-other.example")
        world.logins["other"] = other_owner.get_id()
        world.keys["other"] = api_key(other, Role.OWNER)
        world.customers["camille"] = CustomerFactory(
            organization_ref=organization,
            first_name="Camille",
            last_name="Tremblay",
            email="camille@example.org",
            phone="514-555-0199",
        ).id
        world.other_customer = CustomerFactory(organization_ref=other).id
        with tenant_scope(organization.id):
            apply_province_preset(organization=organization, actor=SET_UP, province="QC")
            tag = services.create_tag(
                organization=organization, actor=SET_UP, name_fr="Boutique", color="#0b57d0"
            )
            staff_tag = services.create_tag(
                organization=organization, actor=SET_UP, name_fr="Comptoir", color="#a34700"
            )
            db.session.flush()
            for key, values in (
                (
                    "cap",
                    {
                        "name_fr": "Bonnet",
                        "name_en": "Cap",
                        "price": 1500,
                        "stock": 10,
                        "sku": "CAP",
                    },
                ),
                (
                    "course",
                    {"name_fr": "Cours de natation", "name_en": "Swimming lessons", "price": 10000},
                ),
                (
                    "exempt",
                    {
                        "name_fr": "Don",
                        "name_en": "Donation",
                        "price": 1000,
                        "tax_category": "exempt",
                    },
                ),
            ):
                article = services.create_article(
                    organization=organization,
                    actor=SET_UP,
                    data=ArticleData(tag_ids=[tag.id], **values),
                )
                world.articles[key] = article.id
            suit = services.create_article(
                organization=organization,
                actor=SET_UP,
                data=ArticleData(
                    name_fr="Maillot",
                    name_en="Swimsuit",
                    price=4000,
                    tag_ids=[tag.id],
                    variants=[
                        VariantData(name_fr="Petit", name_en="Small", stock=2, sku="SUIT-S"),
                        VariantData(
                            name_fr="Grand", name_en="Large", stock=5, price=4500, sku="SUIT-L"
                        ),
                    ],
                ),
            )
            db.session.flush()
            world.articles["suit"] = suit.id
            world.variants["small"] = suit.variants[0].id
            world.variants["large"] = suit.variants[1].id
            for key, article_id in world.articles.items():
                article = db.session.get(Article, article_id)
                assert article is not None
                world.catalog[key] = {
                    "name": article.name_fr,
                    "unit_price": article.price,
                    "tax_category": article.tax_category,
                    "sku": article.sku or "",
                    "article_id": article.id,
                }
            shop = shops.create_shop(
                organization=organization,
                actor=SET_UP,
                data=ShopData(
                    slug="boutique",
                    name_fr="Boutique",
                    name_en="Shop",
                    payment_methods=["offline", "etransfer"],
                    etransfer=dict(ETRANSFER),
                    communication=communication or {},
                    customer_tag_ids=[tag.id],
                    staff_tag_ids=[staff_tag.id],
                ),
            )
            world.shop_id = shop.id
            db.session.commit()
        return world


def line(world: OrderWorld, key: str, quantity: int = 1, **extra: Any) -> LineInput:
    """A line of one of the world's articles at its catalog price."""
    values: dict[str, Any] = {**world.catalog[key], "quantity": quantity}
    values.update(extra)
    return LineInput(**values)


def place(
    app: Flask,
    world: OrderWorld,
    lines: Sequence[LineInput] | None = None,
    *,
    method: str = "offline",
    audience: Audience = Audience.CUSTOMER,
    actor: Actor = CUSTOMER,
    cash_tendered: Any = None,
    reference: str = "",
    counter_sale: bool = False,
    locale: str = "fr",
    owner: OwnerInput | None = None,
) -> tuple[int, str]:
    """Place an order through billing; returns its id and its customer token."""
    with scope(app, world.organization_id) as organization:
        placed = place_order(
            organization=organization,
            actor=actor,
            new=NewOrder(
                lines=list(lines) if lines is not None else [line(world, "course")],
                locale=locale,
                method=method,
                audience=audience,
                offered_methods=["offline", "etransfer"],
                payment=CheckoutPayment(cash_tendered=cash_tendered, reference=reference),
                owner=None
                if counter_sale
                else owner or OwnerInput("Camille", "Tremblay", "camille@example.org"),
                counter_sale=counter_sale,
                shop_id=world.shop_id,
                payment_details={"etransfer": dict(ETRANSFER)} if method == "etransfer" else {},
            ),
        )
        db.session.commit()
        return placed.order.id, placed.token


@dataclass
class OrderState:
    state: str
    total: int
    payments: list[tuple[str, str, int]]
    refunds: list[tuple[str, str, int]]
    credit_notes: list[int]
    invoice_number: int | None


def order_state(app: Flask, order_id: int) -> OrderState:
    """Everything money-related about an order, as plain values."""
    with database(app):
        order = db.session.get(Order, order_id)
        assert order is not None
        payments = db.session.execute(
            sa.select(Payment.method, Payment.state, Payment.amount)
            .where(Payment.order_id == order_id)
            .order_by(Payment.id)
        ).all()
        refunds = db.session.execute(
            sa.select(Refund.method, Refund.state, Refund.amount)
            .where(Refund.order_id == order_id)
            .order_by(Refund.id)
        ).all()
        notes = db.session.execute(
            sa.select(CreditNote.total)
            .where(CreditNote.order_id == order_id)
            .order_by(CreditNote.id)
        ).scalars()
        invoice = db.session.execute(
            sa.select(Invoice.number).where(Invoice.order_id == order_id)
        ).scalar_one_or_none()
        return OrderState(
            state=order.state.value,
            total=order.total,
            payments=[(m.value, s.value, a) for m, s, a in payments],
            refunds=[(m.value, s.value, a) for m, s, a in refunds],
            credit_notes=list(notes),
            invoice_number=invoice,
        )


def sold(app: Flask, world: OrderWorld, key: str) -> int:
    with database(app):
        if key in world.variants:
            variant = db.session.get(ArticleVariant, world.variants[key])
            assert variant is not None
            return variant.sold
        article = db.session.get(Article, world.articles[key])
        assert article is not None
        return article.sold


def set_sold(app: Flask, world: OrderWorld, key: str, value: int) -> None:
    with database(app):
        if key in world.variants:
            db.session.execute(
                sa.update(ArticleVariant)
                .where(ArticleVariant.id == world.variants[key])
                .values(sold=value)
            )
        else:
            db.session.execute(
                sa.update(Article).where(Article.id == world.articles[key]).values(sold=value)
            )
        db.session.commit()


def count(app: Flask, model: Any, organization_id: int | None = None) -> int:
    with database(app):
        query = sa.select(sa.func.count()).select_from(model)
        if organization_id is not None:
            query = query.where(model.organization_id == organization_id)
        return int(db.session.execute(query).scalar_one())


def mails(app: Flask, organization_id: int) -> list[dict[str, Any]]:
    with database(app):
        rows = db.session.execute(
            sa.select(MailMessage)
            .where(MailMessage.organization_id == organization_id)
            .order_by(MailMessage.id)
        ).scalars()
        return [
            {
                "to": row.to_address,
                "cc": list(row.cc_addresses),
                "subject": row.subject,
                "template": row.template,
                "locale": row.locale,
                "text": row.text_body,
                "attachments": [a["filename"] for a in row.attachments],
                "sent": row.sent_at is not None,
            }
            for row in rows
        ]


def audit_actions(app: Flask, organization_id: int) -> list[str]:
    with database(app):
        return list(
            db.session.execute(
                sa.select(AuditLog.action)
                .where(AuditLog.organization_id == organization_id)
                .order_by(AuditLog.id)
            ).scalars()
        )


__all__ = [
    "ATTENDANT",
    "CUSTOMER",
    "ETRANSFER",
    "OWNER",
    "Role",
    "VariantData",
]


# --------------------------------------------------------------------------- carts


def new_cart(
    app: Flask,
    world: OrderWorld,
    items: Sequence[tuple[str, int]] = (("cap", 1),),
    *,
    locale: str = "fr",
) -> tuple[int, str]:
    """A cart of the world's shop holding ``items`` (article or variant key, quantity)."""
    from comptoir.storefront import carts
    from comptoir.storefront.models import Shop

    with scope(app, world.organization_id) as organization:
        shop = db.session.get(Shop, world.shop_id)
        assert shop is not None
        cart, token = carts.create_cart(
            organization=organization, actor=CUSTOMER, shop=shop, locale=locale
        )
        for key, quantity in items:
            if key in world.variants:
                variant = db.session.get(ArticleVariant, world.variants[key])
                assert variant is not None
                article = db.session.get(Article, variant.article_id)
            else:
                variant = None
                article = db.session.get(Article, world.articles[key])
            assert article is not None
            carts.add_line(
                organization=organization,
                actor=CUSTOMER,
                cart=cart,
                article=article,
                variant=variant,
                quantity=quantity,
            )
        db.session.commit()
        return cart.id, token


def expire_cart(app: Flask, cart_id: int) -> None:
    """Move a cart's time (and its holds') into the past, as if the customer went away."""
    from datetime import timedelta

    from comptoir.platform.db import utcnow
    from comptoir.storefront.cart_models import Cart, StockHold

    past = utcnow() - timedelta(minutes=1)
    with database(app):
        db.session.execute(sa.update(Cart).where(Cart.id == cart_id).values(expires_at=past))
        db.session.execute(
            sa.update(StockHold).where(StockHold.cart_id == cart_id).values(expires_at=past)
        )
        db.session.commit()


def cart_status(app: Flask, cart_id: int) -> str:
    from comptoir.storefront.cart_models import Cart

    with database(app):
        cart = db.session.get(Cart, cart_id)
        assert cart is not None
        return cart.status.value


def holds_of(app: Flask, cart_id: int) -> int:
    from comptoir.storefront.cart_models import StockHold

    with database(app):
        return int(
            db.session.execute(
                sa.select(sa.func.coalesce(sa.func.sum(StockHold.quantity), 0)).where(
                    StockHold.cart_id == cart_id
                )
            ).scalar_one()
        )


OWNER_ANSWERS = {"first_name": "Camille", "last_name": "Tremblay", "email": "camille@example.org"}
