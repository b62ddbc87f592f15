"""Tax arithmetic (property-based) and the provincial presets."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from comptoir.billing.taxes import (
    PRESETS,
    PROVINCE_PRESETS,
    STANDARD,
    AppliedRate,
    TaxableLine,
    TaxRate,
    apply_province_preset,
    compute_taxes,
    rates_by_category,
    tax_on,
)
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.errors import ValidationError
from comptoir.platform.tenancy import tenant_scope
from tests.factories import OrganizationFactory

QUEBEC = [
    AppliedRate("GST", "GST", Decimal("5.000"), position=0),
    AppliedRate("QST", "QST", Decimal("9.975"), position=1),
]
OWNER = Actor(label="owner@example.org", role="owner")

amounts = st.integers(min_value=0, max_value=10_000_000)
rates = st.sampled_from([preset.rate for preset in PRESETS.values()])
categories = st.sampled_from([STANDARD, "exempt"])
lines_strategy = st.lists(
    st.builds(TaxableLine, amount=amounts, category=categories), min_size=0, max_size=30
)


def test_known_quebec_amounts() -> None:
    breakdown = compute_taxes([TaxableLine(10_000, STANDARD)], {STANDARD: QUEBEC})
    assert [(t.code, t.amount) for t in breakdown.taxes] == [("GST", 500), ("QST", 998)]
    assert breakdown.total == 11_498


def test_half_cent_rounds_up() -> None:
    # 5 % of 10 cents is 0.5 cent: half up gives 1; 9.975 % of 1 cent is 0.09975: 0.
    assert tax_on(10, Decimal("5.000")) == 1
    assert tax_on(30, Decimal("5.000")) == 2  # 1.5 -> 2
    assert tax_on(1, Decimal("9.975")) == 0
    assert tax_on(-10, Decimal("5.000")) == -1  # refunds mirror sales


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        tax_on(10.0, Decimal(5))  # type: ignore[arg-type]


@given(lines_strategy)
def test_total_is_lines_plus_taxes_in_integers(lines: list[TaxableLine]) -> None:
    breakdown = compute_taxes(lines, {STANDARD: QUEBEC})
    assert breakdown.subtotal == sum(line.amount for line in lines)
    assert breakdown.total == breakdown.subtotal + sum(t.amount for t in breakdown.taxes)
    for tax in breakdown.taxes:
        assert isinstance(tax.amount, int)
        assert tax.amount >= 0
        assert tax.amount == sum(
            line_tax.amount
            for line_taxes in breakdown.lines
            for line_tax in line_taxes
            if line_tax.code == tax.code
        )
    assert breakdown.total >= breakdown.subtotal >= 0


@given(lines_strategy)
def test_a_lines_tax_does_not_depend_on_the_rest_of_the_cart(lines: list[TaxableLine]) -> None:
    together = compute_taxes(lines, {STANDARD: QUEBEC})
    for line, line_taxes in zip(lines, together.lines, strict=True):
        alone = compute_taxes([line], {STANDARD: QUEBEC})
        assert alone.lines[0] == line_taxes
    reversed_breakdown = compute_taxes(list(reversed(lines)), {STANDARD: QUEBEC})
    assert reversed_breakdown.taxes == together.taxes


@given(amounts, rates)
def test_rounding_is_within_half_a_cent(amount: int, rate: Decimal) -> None:
    exact = Decimal(amount) * rate / 100
    assert abs(Decimal(tax_on(amount, rate)) - exact) <= Decimal("0.5")


@given(lines_strategy)
def test_exempt_lines_pay_nothing(lines: list[TaxableLine]) -> None:
    breakdown = compute_taxes(lines, {STANDARD: QUEBEC})
    for line, line_taxes in zip(lines, breakdown.lines, strict=True):
        if line.category == "exempt":
            assert line_taxes == []


@pytest.mark.usefixtures("app_context")
class TestPresets:
    def test_quebec_preset_is_idempotent_and_used_by_categories(self) -> None:
        organization = OrganizationFactory(province="QC")
        with tenant_scope(organization.id):
            apply_province_preset(organization=organization, actor=OWNER, province="QC")
            apply_province_preset(organization=organization, actor=OWNER, province="qc")
            db.session.commit()
            codes = db.session.execute(sa.select(TaxRate.code).order_by(TaxRate.code)).scalars()
            assert list(codes) == ["GST", "QST"]
            by_category = rates_by_category([STANDARD, "exempt"], "fr")
        assert [r.name for r in by_category[STANDARD]] == ["TPS", "TVQ"]
        assert by_category[STANDARD][1].registration_number == organization.qst_number
        assert by_category["exempt"] == []

    def test_every_province_has_a_preset(self) -> None:
        assert set(PROVINCE_PRESETS) == {
            "QC",
            "ON",
            "NB",
            "NL",
            "NS",
            "PE",
            "BC",
            "MB",
            "SK",
            "AB",
            "NT",
            "NU",
            "YT",
        }

    def test_unknown_province_is_refused(self) -> None:
        organization = OrganizationFactory()
        with tenant_scope(organization.id), pytest.raises(ValidationError):
            apply_province_preset(organization=organization, actor=OWNER, province="ZZ")

    def test_attendant_cannot_change_taxes(self) -> None:
        organization = OrganizationFactory()
        attendant = Actor(label="a", role="attendant")
        with tenant_scope(organization.id), pytest.raises(Exception, match="role"):
            apply_province_preset(organization=organization, actor=attendant, province="QC")
