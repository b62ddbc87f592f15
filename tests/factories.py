"""factory_boy factories. Rows are committed, across organizations, as a test's set-up."""

from __future__ import annotations

from typing import Any

import factory
from argon2 import PasswordHasher

from comptoir.platform.db import db
from comptoir.platform.tenancy import unscoped
from comptoir.tenants.models import Customer, Membership, Organization, Role, User

# Low-cost hashing parameters: tests hash many passwords; production uses the library defaults.
_TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
DEFAULT_PASSWORD = "correct horse battery staple"


class CommittingFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731 - factory_boy wants a callable
        sqlalchemy_session_persistence = None

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> Any:
        with unscoped():
            instance = super()._create(model_class, *args, **kwargs)
            db.session.commit()
        return instance


class OrganizationFactory(CommittingFactory):
    class Meta:
        model = Organization

    slug = factory.Sequence(lambda n: f"club-{n}")
    name = factory.Sequence(lambda n: f"Club {n}")
    # English unless a test says otherwise: assertions read English messages.
    default_locale = "en"
    address_line1 = "123 rue Principale"
    city = "Montréal"
    province = "QC"
    postal_code = "H2X 1Y4"
    gst_hst_number = "123456789 RT0001"
    qst_number = "1234567890 TQ0001"


class UserFactory(CommittingFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"person{n}@example.org")
    full_name = factory.Faker("name")
    password_hash = factory.LazyFunction(lambda: _TEST_HASHER.hash(DEFAULT_PASSWORD))


class MembershipFactory(CommittingFactory):
    class Meta:
        model = Membership

    organization_id = factory.LazyAttribute(lambda o: o.organization_ref.id)
    user_id = factory.LazyAttribute(lambda o: o.user_ref.id)
    role = Role.OWNER

    class Params:
        organization_ref = factory.SubFactory(OrganizationFactory)
        user_ref = factory.SubFactory(UserFactory)


class CustomerFactory(CommittingFactory):
    class Meta:
        model = Customer

    organization_id = factory.LazyAttribute(lambda o: o.organization_ref.id)
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"customer{n}@example.org")
    email_normalized = factory.LazyAttribute(lambda o: o.email.lower())
    phone = "514-555-0100"

    class Params:
        organization_ref = factory.SubFactory(OrganizationFactory)


def staff(organization: Organization, role: Role = Role.OWNER, **user_fields: Any) -> User:
    """A user who is staff of ``organization`` with ``role``."""
    user = UserFactory(**user_fields)
    MembershipFactory(organization_ref=organization, user_ref=user, role=role)
    return user


def api_key(organization: Organization, role: Role = Role.OWNER, name: str = "tests") -> str:
    """A new API key of ``organization`` carrying ``role``; returns the secret sent as Bearer."""
    from comptoir.platform.audit import Actor
    from comptoir.platform.tenancy import tenant_scope
    from comptoir.tenants import services

    with tenant_scope(organization.id):
        _key, plaintext = services.create_api_key(
            organization=organization,
            actor=Actor(label="tests", role=Role.OWNER.value),
            name=name,
            role=role,
        )
        db.session.commit()
    return plaintext
