"""Canadian sales taxes: rates per organization, categories of articles, and the arithmetic.

Prices are entered before tax. Each tax is computed per line and rounded half up to the cent, so a
line's taxes do not depend on what else is in the cart, and an invoice can show each line's taxes.
Rates are exact decimals (QST is 9.975 %); amounts stay integers in minor units throughout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import Mapped, mapped_column, relationship

from comptoir.platform import audit
from comptoir.platform.audit import Actor
from comptoir.platform.db import BigId, Model, TenantMixin, TimestampMixin, db, tenant_foreign_key
from comptoir.platform.errors import ValidationError
from comptoir.tenants.models import Organization
from comptoir.tenants.permissions import Permission, ensure

STANDARD = "standard"
EXEMPT = "exempt"
HUNDRED = Decimal(100)


class TaxRate(TenantMixin, TimestampMixin, Model):
    """One tax the organization charges (GST, QST, HST …) with its registration number."""

    __tablename__ = "tax_rates"
    __table_args__ = TenantMixin.tenant_table_args(
        sa.UniqueConstraint("organization_id", "code", name="uq_tax_rates_org_code"),
        sa.CheckConstraint("rate >= 0 AND rate < 100", name="rate_range"),
    )

    code: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    name_fr: Mapped[str] = mapped_column(sa.String(60), nullable=False)
    name_en: Mapped[str] = mapped_column(sa.String(60), nullable=False)
    # Percent with three decimals: 9.975 means 9.975 %.
    rate: Mapped[Decimal] = mapped_column(sa.Numeric(6, 3), nullable=False)
    registration_number: Mapped[str] = mapped_column(sa.String(40), default="", nullable=False)
    position: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)

    def name(self, locale: str) -> str:
        return self.name_fr if locale == "fr" else self.name_en


class TaxCategoryRate(TenantMixin, Model):
    """Which rates apply to an article's tax category (``standard`` → GST + QST in Québec)."""

    __tablename__ = "tax_category_rates"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["tax_rate_id"], "tax_rates", ondelete="CASCADE"),
        sa.UniqueConstraint(
            "organization_id", "category", "tax_rate_id", name="uq_tax_category_rates_entry"
        ),
    )

    category: Mapped[str] = mapped_column(sa.String(30), nullable=False)
    tax_rate_id: Mapped[int] = mapped_column(BigId, nullable=False)

    tax_rate: Mapped[TaxRate] = relationship(
        primaryjoin="and_(TaxCategoryRate.tax_rate_id == TaxRate.id, "
        "TaxCategoryRate.organization_id == TaxRate.organization_id)",
        foreign_keys="[TaxCategoryRate.tax_rate_id, TaxCategoryRate.organization_id]",
        viewonly=True,
        lazy="joined",
    )


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class TaxPreset:
    code: str
    name_fr: str
    name_en: str
    rate: Decimal


PRESETS: dict[str, TaxPreset] = {
    preset.code: preset
    for preset in (
        TaxPreset("GST", "TPS", "GST", Decimal("5.000")),
        TaxPreset("QST", "TVQ", "QST", Decimal("9.975")),
        TaxPreset("HST13", "TVH", "HST", Decimal("13.000")),
        TaxPreset("HST15", "TVH", "HST", Decimal("15.000")),
        TaxPreset("PST_BC", "TVP (C.-B.)", "PST (BC)", Decimal("7.000")),
        TaxPreset("PST_MB", "TVD (Man.)", "RST (MB)", Decimal("7.000")),
        TaxPreset("PST_SK", "TVP (Sask.)", "PST (SK)", Decimal("6.000")),
    )
}

# What a standard taxable sale pays in each province or territory.
PROVINCE_PRESETS: dict[str, tuple[str, ...]] = {
    "QC": ("GST", "QST"),
    "ON": ("HST13",),
    "NB": ("HST15",),
    "NL": ("HST15",),
    "NS": ("HST15",),
    "PE": ("HST15",),
    "BC": ("GST", "PST_BC"),
    "MB": ("GST", "PST_MB"),
    "SK": ("GST", "PST_SK"),
    "AB": ("GST",),
    "NT": ("GST",),
    "NU": ("GST",),
    "YT": ("GST",),
}


def _registration_for(organization: Organization, code: str) -> str:
    if code == "QST":
        return organization.qst_number
    if code.startswith("PST"):
        return organization.pst_number
    return organization.gst_hst_number


def apply_province_preset(
    *, organization: Organization, actor: Actor, province: str
) -> list[TaxRate]:
    """Set up the province's rates for the ``standard`` category (``exempt`` stays untaxed).

    Idempotent: rates that exist keep their registration numbers; missing ones are added.
    """
    ensure(actor.role, Permission.MANAGE_SHOPS)
    codes = PROVINCE_PRESETS.get(province.upper())
    if codes is None:
        message = _("Unknown province or territory.")
        raise ValidationError(message, fields={"province": [message]})
    existing = {rate.code: rate for rate in db.session.execute(sa.select(TaxRate)).scalars()}
    rates: list[TaxRate] = []
    for position, code in enumerate(codes):
        rate = existing.get(code)
        if rate is None:
            preset = PRESETS[code]
            rate = TaxRate(
                organization_id=organization.id,
                code=code,
                name_fr=preset.name_fr,
                name_en=preset.name_en,
                rate=preset.rate,
                registration_number=_registration_for(organization, code),
                position=position,
            )
            db.session.add(rate)
            db.session.flush()
        rates.append(rate)
    linked = set(
        db.session.execute(
            sa.select(TaxCategoryRate.tax_rate_id).where(TaxCategoryRate.category == STANDARD)
        ).scalars()
    )
    for rate in rates:
        if rate.id not in linked:
            db.session.add(
                TaxCategoryRate(
                    organization_id=organization.id, category=STANDARD, tax_rate_id=rate.id
                )
            )
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="taxes.preset_applied",
        target=organization,
        after={"province": province.upper(), "codes": list(codes)},
    )
    return rates


# --------------------------------------------------------------------------- arithmetic


@dataclass(frozen=True)
class AppliedRate:
    """A rate as the arithmetic needs it: plain values, no database row."""

    code: str
    name: str
    rate: Decimal
    registration_number: str = ""
    position: int = 0


@dataclass(frozen=True)
class TaxableLine:
    amount: int  # minor units, before tax (unit price x quantity, after any staff override)
    category: str


@dataclass(frozen=True)
class LineTax:
    code: str
    amount: int


@dataclass(frozen=True)
class TaxTotal:
    code: str
    name: str
    rate: Decimal
    registration_number: str
    amount: int


@dataclass(frozen=True)
class TaxBreakdown:
    subtotal: int
    lines: list[list[LineTax]] = field(default_factory=list)
    taxes: list[TaxTotal] = field(default_factory=list)

    @property
    def tax_total(self) -> int:
        return sum(tax.amount for tax in self.taxes)

    @property
    def total(self) -> int:
        return self.subtotal + self.tax_total


def tax_on(amount: int, rate: Decimal) -> int:
    """One tax on one amount, rounded half up to the cent (half away from zero for refunds)."""
    if not isinstance(amount, int):
        message = "amounts are integers in minor units"
        raise TypeError(message)
    return int((Decimal(amount) * rate / HUNDRED).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def compute_taxes(
    lines: Sequence[TaxableLine], rates_by_category: dict[str, Sequence[AppliedRate]]
) -> TaxBreakdown:
    """Each line's taxes and the totals per tax, in the rates' display order."""
    per_line: list[list[LineTax]] = []
    totals: dict[str, int] = {}
    seen: dict[str, AppliedRate] = {}
    for line in lines:
        line_taxes = []
        for rate in rates_by_category.get(line.category, ()):
            amount = tax_on(line.amount, rate.rate)
            line_taxes.append(LineTax(code=rate.code, amount=amount))
            totals[rate.code] = totals.get(rate.code, 0) + amount
            seen[rate.code] = rate
        per_line.append(line_taxes)
    ordered = sorted(seen.values(), key=lambda rate: (rate.position, rate.code))
    return TaxBreakdown(
        subtotal=sum(line.amount for line in lines),
        lines=per_line,
        taxes=[
            TaxTotal(
                code=rate.code,
                name=rate.name,
                rate=rate.rate,
                registration_number=rate.registration_number,
                amount=totals[rate.code],
            )
            for rate in ordered
        ],
    )


def rates_by_category(categories: Iterable[str], locale: str) -> dict[str, list[AppliedRate]]:
    """The organization-in-scope's rates for these categories, as plain values (one query)."""
    wanted = set(categories)
    if not wanted:
        return {}
    result: dict[str, list[AppliedRate]] = {category: [] for category in wanted}
    rows = db.session.execute(
        sa.select(TaxCategoryRate.category, TaxRate)
        .join(
            TaxRate,
            sa.and_(
                TaxRate.id == TaxCategoryRate.tax_rate_id,
                TaxRate.organization_id == TaxCategoryRate.organization_id,
            ),
        )
        .where(TaxCategoryRate.category.in_(wanted))
        .order_by(TaxRate.position, TaxRate.code)
    ).all()
    for category, rate in rows:
        result[category].append(
            AppliedRate(
                code=rate.code,
                name=rate.name(locale),
                rate=rate.rate,
                registration_number=rate.registration_number,
                position=rate.position,
            )
        )
    return result
