"""``tenant_job``: the organization's scope is entered, and exactly one commit happens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from comptoir.jobs.tenant import tenant_job
from comptoir.platform.db import db
from comptoir.platform.errors import NotFoundError
from comptoir.platform.outbox import OutboxMessage, OutboxStatus, Queue, registered_job, run_message
from comptoir.platform.tenancy import current_organization_id, tenant_scope, unscoped
from comptoir.tenants.models import Customer
from tests.factories import CustomerFactory, OrganizationFactory

seen_scopes: list[int | None] = []


@tenant_job("tests.jobs.set_phone", queue=Queue.LOW)
def set_phone(*, organization_id: int, customer_id: int, phone: str) -> None:
    seen_scopes.append(current_organization_id())
    # A tenant model: the ORM guard refuses this query unless the scope is set.
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError("customer not found")
    customer.phone = phone
    db.session.flush()


@pytest.fixture(autouse=True)
def _forget_scopes() -> None:
    seen_scopes.clear()


@pytest.fixture
def commits() -> Iterator[list[int]]:
    """Counts real commits (not savepoint releases) made by any session."""
    counted: list[int] = []

    def count(session: Session) -> None:
        if not session.in_nested_transaction():
            counted.append(1)

    event.listen(Session, "after_commit", count)
    yield counted
    event.remove(Session, "after_commit", count)


def new_customer(**fields: object) -> tuple[int, int, str]:
    """A committed customer's (organization id, id, phone)."""
    customer = CustomerFactory(**fields)
    with unscoped():
        return customer.organization_id, customer.id, customer.phone


def phone_of(customer_id: int) -> str:
    with unscoped():
        phone = db.session.execute(
            sa.select(Customer.phone).where(Customer.id == customer_id)
        ).scalar_one()
    db.session.rollback()
    return phone


def test_registration_with_the_outbox() -> None:
    registered = registered_job("tests.jobs.set_phone")
    assert registered.tenant is True
    assert registered.queue is Queue.LOW
    assert registered.function is set_phone


def test_direct_call_enters_the_scope_and_commits_once(app: Flask, commits: list[int]) -> None:
    with app.app_context():
        organization_id, customer_id, _phone = new_customer()
        commits.clear()
        assert current_organization_id() is None

        set_phone(organization_id=organization_id, customer_id=customer_id, phone="514-555-0199")

        assert commits == [1]
        assert seen_scopes == [organization_id]
        assert current_organization_id() is None  # the scope is left again
        assert phone_of(customer_id) == "514-555-0199"


def test_direct_call_for_another_organizations_object_changes_nothing(
    app: Flask, commits: list[int]
) -> None:
    with app.app_context():
        _theirs, their_id, their_phone = new_customer()
        ours = OrganizationFactory()
        commits.clear()
        with pytest.raises(NotFoundError):
            set_phone(organization_id=ours.id, customer_id=their_id, phone="000")
        assert commits == []
        assert phone_of(their_id) == their_phone


def test_direct_call_refuses_unsaved_changes_and_positional_arguments(app: Flask) -> None:
    with app.app_context():
        organization_id, customer_id, _phone = new_customer()
        with unscoped():
            customer = db.session.get(Customer, customer_id)
            assert customer is not None
            customer.phone = "111"
            with pytest.raises(RuntimeError, match="unsaved changes"):
                set_phone(organization_id=organization_id, customer_id=customer_id, phone="2")
        db.session.rollback()
        with pytest.raises(TypeError, match="keyword"):
            set_phone(organization_id, customer_id, "3")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="organization_id"):
            set_phone(organization_id="1", customer_id=customer_id, phone="3")  # type: ignore[arg-type]
        assert seen_scopes == []


def test_through_the_outbox_the_job_shares_the_runners_single_commit(
    app: Flask, commits: list[int]
) -> None:
    with app.app_context():
        organization_id, customer_id, _phone = new_customer()
        with tenant_scope(organization_id):
            message = set_phone.enqueue(customer_id=customer_id, phone="438-555-0100")
            message_id = message.id
            assert message.organization_id == organization_id
            assert message.queue == Queue.LOW.value
        db.session.commit()
        commits.clear()

        assert run_message(message_id) == "done"

        # One commit: the job's change and the message marked done, together.
        assert commits == [1]
        assert seen_scopes == [organization_id]
        assert phone_of(customer_id) == "438-555-0100"
        with unscoped():
            row = db.session.get(OutboxMessage, message_id)
            assert row is not None
            assert row.status == OutboxStatus.DONE.value


def test_a_failing_job_through_the_outbox_saves_nothing(app: Flask) -> None:
    with app.app_context():
        _theirs, their_id, their_phone = new_customer()
        ours = OrganizationFactory()
        with tenant_scope(ours.id):
            message_id = set_phone.enqueue(customer_id=their_id, phone="000").id
        db.session.commit()
        with pytest.raises(NotFoundError):
            run_message(message_id)
        assert phone_of(their_id) == their_phone
        with unscoped():
            row = db.session.get(OutboxMessage, message_id, populate_existing=True)
            assert row is not None
            assert row.attempts == 1
            assert row.last_error == "NotFoundError: customer not found"


def test_the_rq_worker_runs_tenant_jobs(app: Flask, jobs: object) -> None:
    with app.app_context():
        organization_id, customer_id, _phone = new_customer()
        with tenant_scope(organization_id):
            set_phone.enqueue(customer_id=customer_id, phone="819-555-0123")
        db.session.commit()
    assert jobs() == 1  # type: ignore[operator]
    with app.app_context():
        assert phone_of(customer_id) == "819-555-0123"


def test_enqueue_needs_the_organization_in_scope(app: Flask) -> None:
    with app.app_context():
        with pytest.raises(RuntimeError, match="without an organization"):
            set_phone.enqueue(customer_id=1, phone="1")
        organization = OrganizationFactory()
        with tenant_scope(organization.id), pytest.raises(TypeError, match="from the scope"):
            set_phone.enqueue(organization_id=organization.id, customer_id=1, phone="1")
        db.session.rollback()
