"""The tenancy walls: the ORM guard, row-level security and composite foreign keys."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from comptoir.platform.db import db
from comptoir.platform.tenancy import TenancyError, tenant_scope, unscoped
from comptoir.tenants.models import ApiKey, Customer, Invitation, Membership, Role
from tests.factories import CustomerFactory, OrganizationFactory, staff

pytestmark = pytest.mark.usefixtures("app_context")


@pytest.fixture
def two_organizations() -> tuple[int, int]:
    first = OrganizationFactory(slug="alpha")
    second = OrganizationFactory(slug="beta")
    for _ in range(3):
        CustomerFactory(organization_ref=first)
    for _ in range(2):
        CustomerFactory(organization_ref=second)
    return first.id, second.id


def test_orm_query_without_scope_raises(two_organizations: tuple[int, int]) -> None:
    with pytest.raises(TenancyError, match="Customer"):
        db.session.execute(sa.select(Customer)).scalars().all()


def test_orm_get_without_scope_raises(two_organizations: tuple[int, int]) -> None:
    with pytest.raises(TenancyError):
        db.session.get(Customer, 1)


def test_orm_query_is_filtered_by_scope(two_organizations: tuple[int, int]) -> None:
    first, second = two_organizations
    with tenant_scope(first):
        customers = db.session.execute(sa.select(Customer)).scalars().all()
        assert {c.organization_id for c in customers} == {first}
        assert len(customers) == 3
        # An id of the other organization is simply not there.
        other_id = db.session.execute(
            sa.text("SELECT min(id) FROM customers WHERE organization_id = :o"), {"o": second}
        ).scalar()
        assert other_id is None  # row-level security hides it from raw SQL too
    db.session.rollback()
    with unscoped():
        other = (
            db.session.execute(sa.select(Customer.id).where(Customer.organization_id == second))
            .scalars()
            .first()
        )
    db.session.rollback()
    with tenant_scope(first):
        assert db.session.get(Customer, other) is None


def test_joins_and_aliases_are_filtered(two_organizations: tuple[int, int]) -> None:
    first, _second = two_organizations
    with tenant_scope(first):
        aliased = sa.orm.aliased(Customer)
        rows = db.session.execute(sa.select(aliased.organization_id)).scalars().all()
        assert set(rows) == {first}


def test_orm_bulk_update_is_filtered(two_organizations: tuple[int, int]) -> None:
    first, second = two_organizations
    with tenant_scope(first):
        db.session.execute(sa.update(Customer).values(phone="000"))
        db.session.commit()
    with unscoped():
        phones = db.session.execute(sa.select(Customer.organization_id, Customer.phone)).all()
    assert {phone for org, phone in phones if org == first} == {"000"}
    assert "000" not in {phone for org, phone in phones if org == second}


def test_raw_sql_under_rls_sees_only_scoped_rows(two_organizations: tuple[int, int]) -> None:
    first, second = two_organizations
    with tenant_scope(first):
        organization_ids = (
            db.session.execute(sa.text("SELECT organization_id FROM customers")).scalars().all()
        )
    assert organization_ids == [first] * 3
    db.session.rollback()
    with tenant_scope(second):
        assert db.session.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 2
    db.session.rollback()


def test_raw_sql_without_scope_sees_no_rows(two_organizations: tuple[int, int]) -> None:
    assert db.session.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 0
    db.session.rollback()
    with unscoped():
        assert db.session.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 5


def test_scope_change_mid_transaction_is_applied(two_organizations: tuple[int, int]) -> None:
    first, second = two_organizations
    with tenant_scope(first):
        assert db.session.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 3
        with tenant_scope(second):
            assert db.session.execute(sa.select(sa.func.count(Customer.id))).scalar() == 2
            assert db.session.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 2


def test_rls_refuses_writing_a_row_for_another_organization(
    two_organizations: tuple[int, int],
) -> None:
    first, second = two_organizations
    with tenant_scope(first), pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
        db.session.execute(
            sa.text(
                "INSERT INTO customers (organization_id, first_name, last_name, email, "
                "email_normalized, phone, created_at) "
                "VALUES (:o, 'X', 'Y', 'x@y.z', 'x@y.z', '', now())"
            ),
            {"o": second},
        )
    db.session.rollback()


def test_new_rows_are_stamped_with_the_scope(two_organizations: tuple[int, int]) -> None:
    first, _second = two_organizations
    with tenant_scope(first):
        customer = Customer(first_name="A", last_name="B", email="a@b.c", email_normalized="a@b.c")
        db.session.add(customer)
        db.session.flush()
        assert customer.organization_id == first
        db.session.rollback()


def test_new_row_for_another_organization_is_refused(two_organizations: tuple[int, int]) -> None:
    first, second = two_organizations
    with tenant_scope(first):
        db.session.add(
            Customer(
                organization_id=second,
                first_name="A",
                last_name="B",
                email="a@b.c",
                email_normalized="a@b.c",
            )
        )
        with pytest.raises(TenancyError):
            db.session.flush()
        db.session.rollback()


def test_new_row_without_scope_is_refused() -> None:
    db.session.add(Customer(first_name="A", last_name="B", email="a@b.c", email_normalized="a@b.c"))
    with pytest.raises(TenancyError):
        db.session.flush()
    db.session.rollback()


def test_database_refuses_reference_into_another_organization() -> None:
    first = OrganizationFactory()
    second = OrganizationFactory()
    staff(second, Role.OWNER)
    with unscoped():
        foreign_membership = db.session.execute(
            sa.select(Membership).where(Membership.organization_id == second.id)
        ).scalar_one()
        key = ApiKey(
            organization_id=first.id,
            name="sneaky",
            prefix="abcd1234",
            secret_hash="0" * 64,
            role=Role.ADMIN,
            created_by_membership_id=foreign_membership.id,
        )
        db.session.add(key)
        with pytest.raises(IntegrityError, match="fk_api_keys"):
            db.session.flush()
        db.session.rollback()


def test_every_tenant_table_has_forced_row_level_security() -> None:
    from comptoir.platform.db import TenantMixin

    tenant_tables = {
        mapper.class_.__tablename__
        for mapper in db.Model.registry.mappers
        if issubclass(mapper.class_, TenantMixin)
    }
    with unscoped():
        rows = db.session.execute(
            sa.text(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
            )
        ).all()
    flags = {name: (enabled, forced) for name, enabled, forced in rows}
    assert tenant_tables <= flags.keys()
    assert {name for name in tenant_tables if flags[name] != (True, True)} == set()
    assert {"customers", "memberships", "invitations", "api_keys", "audit_logs"} <= tenant_tables
    assert Invitation.__tablename__ in tenant_tables


def test_app_role_is_not_privileged() -> None:
    privileged = db.session.execute(
        sa.text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).scalar()
    assert privileged is False
