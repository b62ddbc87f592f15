"""``comptoir seed-demo``: a French-speaking swimming club to try Comptoir with.

The demo is built by steps, one per domain, run in order in one transaction (:data:`STEPS`). Each
step receives the :class:`Demo` being built and finds what an earlier run made before making
anything, so running the command again changes nothing and prints the same logins. A domain adds
its demo data (articles, shop settings...) by adding its step to :data:`STEPS`.

The passwords below are for this demo only: anyone reading this file knows them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from comptoir.billing import payment_methods
from comptoir.billing.stripe_demo import connect_demo_account
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.settings import current_settings
from comptoir.platform.tenancy import tenant_scope, unscoped
from comptoir.storefront import shops
from comptoir.storefront.demo import seed_catalog
from comptoir.tenants import services
from comptoir.tenants.cli import one_transaction
from comptoir.tenants.models import Customer, Membership, Organization, Role, User

DEMO_SLUG = "dauphins"
DEMO_NAME = "Club de natation Les Dauphins"

# Acts for the platform while the demo is set up (an operator with an owner's powers).
DEMO_ACTOR = Actor(label="demo", role=Role.OWNER.value, is_operator=True)


@dataclass(frozen=True)
class DemoLogin:
    who: str
    email: str
    password: str
    full_name: str
    role: Role | None = None  # None: a platform operator


OPERATOR = DemoLogin("operator", "operator@comptoir.demo", "demo-password-4", "Olivier Opérateur")
STAFF = (
    DemoLogin("owner", "owner@dauphins.demo", "demo-password-1", "Geneviève Lavoie", Role.OWNER),
    DemoLogin("admin", "admin@dauphins.demo", "demo-password-2", "Karim Benali", Role.ADMIN),
    DemoLogin(
        "attendant", "accueil@dauphins.demo", "demo-password-3", "Chloé Pelletier", Role.ATTENDANT
    ),
)
CUSTOMERS = (
    ("Élodie", "Tremblay", "elodie.tremblay@courriel.demo", "514 555-0101"),
    ("Jean-François", "Gagnon", "jf.gagnon@courriel.demo", "514 555-0102"),
    ("Marie-Ève", "Roy", "marie-eve.roy@courriel.demo", "438 555-0103"),
    ("Mathieu", "Côté", "mathieu.cote@courriel.demo", "514 555-0104"),
    ("Sophie", "Bouchard", "sophie.bouchard@courriel.demo", "450 555-0105"),
    ("Antoine", "Gauthier", "antoine.gauthier@courriel.demo", ""),
)


@dataclass
class Demo:
    """What the steps build and share; filled in as they run."""

    organization: Organization | None = None
    # Secret invitation links made during this run, by e-mail, for the steps that accept them.
    invitation_tokens: dict[str, str] = field(default_factory=dict)
    logins: list[DemoLogin] = field(default_factory=list)

    @property
    def org(self) -> Organization:
        assert self.organization is not None, "seed_organization runs first"
        return self.organization

    def owner_actor(self) -> Actor:
        owner = services.find_user_by_email(STAFF[0].email)
        assert owner is not None, "seed_people runs before the steps that act as the owner"
        return Actor(label=owner.email, user_id=owner.id, role=Role.OWNER.value)


def _token_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def seed_organization(demo: Demo) -> None:
    organization = db.session.execute(
        sa.select(Organization).where(Organization.slug == DEMO_SLUG)
    ).scalar_one_or_none()
    if organization is None:
        created = services.create_organization(
            actor=DEMO_ACTOR,
            slug=DEMO_SLUG,
            name=DEMO_NAME,
            owner_email=STAFF[0].email,
            locale="fr",
            currency="CAD",
        )
        organization = created.organization
        demo.invitation_tokens[STAFF[0].email] = _token_of(created.invitation_url)
        # Invoice details; there is no settings form for them yet.
        organization.address_line1 = "4545, avenue Pierre-De Coubertin"
        organization.city = "Montréal"
        organization.province = "QC"
        organization.postal_code = "H1V 0B2"
        organization.country = "CA"
        organization.email = "info@dauphins.demo"
        organization.phone = "514 555-0142"
        organization.gst_hst_number = "123456789 RT0001"
        organization.qst_number = "1234567890 TQ0001"
        db.session.flush()
    demo.organization = organization


def seed_people(demo: Demo) -> None:
    if services.find_user_by_email(OPERATOR.email) is None:
        services.create_operator(
            email=OPERATOR.email, password=OPERATOR.password, full_name=OPERATOR.full_name
        )
    with tenant_scope(demo.org.id):
        for person in STAFF:
            demo.logins.append(person)
            user = services.find_user_by_email(person.email)
            if user is not None and _is_member(user):
                continue
            token = demo.invitation_tokens.pop(person.email, None)
            if token is None:
                assert person.role is not None
                _invitation, url = services.invite_staff(
                    organization=demo.org, actor=DEMO_ACTOR, email=person.email, role=person.role
                )
                token = _token_of(url)
            services.accept_invitation(
                token=token,
                user=user,
                full_name=person.full_name,
                password=person.password,
            )
    demo.logins.append(OPERATOR)


def _is_member(user: User) -> bool:
    return (
        db.session.execute(
            sa.select(Membership.id).where(Membership.user_id == user.id)
        ).scalar_one_or_none()
        is not None
    )


def seed_customers(demo: Demo) -> None:
    with tenant_scope(demo.org.id):
        actor = demo.owner_actor()
        for first_name, last_name, email, phone in CUSTOMERS:
            exists = db.session.execute(
                sa.select(Customer.id).where(Customer.email_normalized == email.lower())
            ).scalar_one_or_none()
            if exists is None:
                services.create_customer(
                    organization=demo.org,
                    actor=actor,
                    first_name=first_name,
                    last_name=last_name,
                    email=email,
                    phone=phone,
                )


def seed_shop(demo: Demo) -> None:
    seed_catalog(demo.org, demo.owner_actor())


def seed_stripe(demo: Demo) -> None:
    """Simulated payments: the club's Stripe account (simulated, onboarded) and card payments
    offered in its shops, when no Stripe is configured and the card method exists."""
    with tenant_scope(demo.org.id):
        actor = demo.owner_actor()
        account = connect_demo_account(organization=demo.org, actor=actor)
        if account is None or not account.charges_enabled or payment_methods.get("card") is None:
            return
        for shop in shops.list_shops():
            if "card" not in shop.payment_methods:
                shops.update_shop(
                    organization=demo.org,
                    actor=actor,
                    shop=shop,
                    data=shops.merge(
                        shops.shop_data(shop), {"payment_methods": [*shop.payment_methods, "card"]}
                    ),
                )


# In order; each domain appends its own step after the ones it builds on.
STEPS: list[Callable[[Demo], None]] = [
    seed_organization,
    seed_people,
    seed_customers,
    seed_shop,
    seed_stripe,
]


def seed() -> Demo:
    """Run every step in one transaction (the caller commits)."""
    demo = Demo()
    with unscoped():
        for step in STEPS:
            step(demo)
    return demo


def summary(demo: Demo, base_url: str) -> list[str]:
    base = base_url.rstrip("/")
    slug = demo.org.slug
    lines = [
        f"Comptoir demo: {demo.org.name}",
        "",
        f"  Home             {base}/",
        f"  Sign in          {base}/login",
        f"  Microsite        {base}/o/{slug}/",
        f"  Admin portal     {base}/o/{slug}/admin/",
        f"  Operator console {base}/operators/",
        f"  Dev mailbox      {base}/_dev/mail",
        "",
        "Demo logins (for this demo only):",
    ]
    width = max(len(login.email) for login in demo.logins)
    lines.extend(
        f"  {login.who:<10} {login.email:<{width}}  {login.password}" for login in demo.logins
    )
    return lines


@click.command("seed-demo")
@click.option(
    "--base-url",
    default=None,
    help="Where the demo is served, for the printed links (default: COMPTOIR_BASE_URL).",
)
@with_appcontext
def seed_demo_command(base_url: str | None) -> None:
    """Create (once) the demo swimming club, its staff, an operator and customers."""
    with one_transaction():
        demo = seed()
        lines = summary(demo, base_url or current_settings().base_url)
    for line in lines:
        click.echo(line)
