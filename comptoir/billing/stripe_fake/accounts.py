"""Connect: connected accounts, onboarding links and the ``account.updated`` they cause."""

from __future__ import annotations

from typing import Any

from comptoir.billing.stripe_fake import params as p
from comptoir.billing.stripe_fake.errors import StripeFakeError, missing
from comptoir.billing.stripe_fake.state import FakeStripe, Store, random_id

ONBOARDING_REQUIREMENTS = [
    "business_profile.mcc",
    "business_profile.url",
    "external_account",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]

DEFAULT_CURRENCIES = {"CA": "cad", "US": "usd", "FR": "eur", "BE": "eur", "CH": "chf", "GB": "gbp"}

# What onboarding changes, and so what ``previous_attributes`` reports on ``account.updated``.
_STATE_FIELDS = (
    "details_submitted",
    "charges_enabled",
    "payouts_enabled",
    "capabilities",
    "requirements",
)


def _requirements(due: list[str]) -> dict[str, Any]:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": "requirements.past_due" if due else None,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due),
        "pending_verification": [],
    }


def create_account(fake: FakeStripe, store: Store, params: dict[str, Any]) -> dict[str, Any]:
    if store.account_id is not None:
        raise StripeFakeError(
            400, "Connected accounts can only be created by the platform, without Stripe-Account."
        )
    p.allow(params, ("type", "country", "email", "metadata", "business_type", "controller"))
    country = (p.string(params, "country") or "US").upper()
    if len(country) != 2 or not country.isalpha():
        raise p.parameter_invalid("country", f"Invalid country: {country}")
    account_type = p.choice(params, "type", ("standard", "express", "custom"), default="standard")
    return _put_account(
        fake,
        random_id("acct", 16),
        account_type=account_type or "standard",
        country=country,
        email=p.string(params, "email"),
        business_type=p.choice(
            params,
            "business_type",
            ("individual", "company", "non_profit", "government_entity"),
        ),
        metadata=p.metadata(params),
    )


def _put_account(
    fake: FakeStripe,
    account_id: str,
    *,
    account_type: str,
    country: str,
    email: str | None,
    business_type: str | None,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    account = fake.fixtures.build(
        "account",
        id=account_id,
        object="account",
        type=account_type,
        country=country,
        email=email,
        business_type=business_type,
        created=fake.now(),
        default_currency=DEFAULT_CURRENCIES.get(country, "usd"),
        details_submitted=False,
        charges_enabled=False,
        payouts_enabled=False,
        capabilities={"card_payments": "inactive", "transfers": "inactive"},
        requirements=_requirements(ONBOARDING_REQUIREMENTS),
        future_requirements=_requirements([]),
        metadata=metadata,
        external_accounts={
            "data": [],
            "has_more": False,
            "object": "list",
            "url": f"/v1/accounts/{account_id}/external_accounts",
        },
    )
    fake.put(fake.platform, account)
    fake.connected[account_id] = Store(account_id)
    return account


def restore_account(
    fake: FakeStripe,
    account_id: str,
    *,
    country: str = "CA",
    email: str | None = None,
    metadata: dict[str, Any] | None = None,
    details_submitted: bool = False,
    charges_enabled: bool = False,
    payouts_enabled: bool = False,
) -> dict[str, Any]:
    """Bring back a connected account the fake forgot (it keeps nothing across restarts), with
    its id and onboarding state, and emit nothing: for the demo, whose database outlives the
    fake. An account the fake still knows is left as it is."""
    with fake.lock:
        existing = fake.platform.objects.get(account_id)
        if existing is not None and existing.get("object") == "account":
            return existing
        _put_account(
            fake,
            account_id,
            account_type="standard",
            country=country.upper(),
            email=email,
            business_type=None,
            metadata={key: str(value) for key, value in (metadata or {}).items()},
        )
        account = fake.platform.objects[account_id]
        account["details_submitted"] = bool(details_submitted)
        account["charges_enabled"] = bool(charges_enabled)
        account["payouts_enabled"] = bool(payouts_enabled)
        status = "active" if charges_enabled else "inactive"
        account["capabilities"] = {"card_payments": status, "transfers": status}
        account["requirements"] = _requirements(
            [] if details_submitted else ONBOARDING_REQUIREMENTS
        )
        return account


def retrieve_account(
    fake: FakeStripe, store: Store, params: dict[str, Any], account_id: str | None = None
) -> dict[str, Any]:
    p.allow(params, ())
    wanted = account_id or store.account_id
    if wanted is None:
        raise missing("account", "", "account")
    # A connected account may read itself; only the platform reads the others.
    if store.account_id is not None and wanted != store.account_id:
        raise missing("account", wanted, "account")
    account = fake.platform.objects.get(wanted)
    if account is None or account.get("object") != "account":
        raise missing("account", wanted, "account")
    return account


def delete_account(
    fake: FakeStripe, store: Store, params: dict[str, Any], account_id: str
) -> dict[str, Any]:
    p.allow(params, ())
    account = retrieve_account(fake, store, {}, account_id)
    del fake.platform.objects[account["id"]]
    fake.connected.pop(account["id"], None)
    return fake.fixtures.build("deleted_account", id=account["id"], deleted=True)


def create_account_link(fake: FakeStripe, store: Store, params: dict[str, Any]) -> dict[str, Any]:
    p.allow(
        params, ("account", "refresh_url", "return_url", "type", "collect", "collection_options")
    )
    account_id = p.string(params, "account", required=True)
    assert account_id is not None
    p.choice(params, "type", ("account_onboarding", "account_update"))
    if p.string(params, "type") is None:
        raise p.parameter_missing("type")
    refresh_url = p.string(params, "refresh_url", required=True)
    return_url = p.string(params, "return_url", required=True)
    account = fake.platform.objects.get(account_id)
    if account is None or store.account_id is not None:
        raise missing("account", account_id, "account")
    created = fake.now()
    expires_at = created + 300
    token = fake.new_link(
        "onboarding",
        account_id,
        account_id,
        refresh_url=refresh_url,
        return_url=return_url,
        expires_at=expires_at,
    )
    return fake.fixtures.build(
        "account_link",
        created=created,
        expires_at=expires_at,
        url=fake.url(f"/_fake/connect/onboarding/{token}"),
    )


def update_account_state(fake: FakeStripe, account_id: str, **changes: Any) -> dict[str, Any]:
    """Change what onboarding decides (charges enabled...) and emit ``account.updated``."""
    with fake.lock:
        account = fake.platform.objects.get(account_id)
        if account is None:
            raise missing("account", account_id, "account")
        before = {name: account[name] for name in _STATE_FIELDS}
        for name in ("details_submitted", "charges_enabled", "payouts_enabled"):
            if name in changes:
                account[name] = bool(changes[name])
        status = "active" if account["charges_enabled"] else "inactive"
        account["capabilities"] = {"card_payments": status, "transfers": status}
        due = [] if account["details_submitted"] else ONBOARDING_REQUIREMENTS
        account["requirements"] = _requirements(due)
        changed = {name: value for name, value in before.items() if account[name] != value}
        if changed:
            fake.record_event(fake.connected[account_id], "account.updated", account, changed)
        return account


def complete_onboarding(fake: FakeStripe, account_id: str) -> dict[str, Any]:
    return update_account_state(
        fake, account_id, details_submitted=True, charges_enabled=True, payouts_enabled=True
    )
