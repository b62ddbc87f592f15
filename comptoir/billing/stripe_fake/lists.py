"""List endpoints: Stripe's cursor pagination, newest first, and the events list's filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from comptoir.billing.stripe_fake import params as p
from comptoir.billing.stripe_fake.errors import StripeFakeError, missing
from comptoir.billing.stripe_fake.state import FakeStripe, Store

Predicate = Callable[[dict[str, Any]], bool]
LIST_PARAMS = ("limit", "starting_after", "ending_before", "created")


def page(items: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
    """One page of ``items`` (already newest first) as Stripe's list object."""
    limit = p.integer(params, "limit", minimum=1) or 10
    if limit > 100:
        raise p.parameter_invalid("limit", "This value must be less than or equal to 100.")
    ids = [item["id"] for item in items]
    after = p.string(params, "starting_after")
    before = p.string(params, "ending_before")
    if after:
        if after not in ids:
            raise missing("object", after, "starting_after")
        rest = items[ids.index(after) + 1 :]
        chosen, has_more = rest[:limit], len(rest) > limit
    elif before:
        if before not in ids:
            raise missing("object", before, "ending_before")
        rest = items[: ids.index(before)]
        chosen, has_more = rest[-limit:], len(rest) > limit
    else:
        chosen, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": chosen, "has_more": has_more, "url": url}


def created_filter(params: dict[str, Any]) -> Predicate:
    raw = params.get("created")
    if raw is None or raw == "":
        return lambda _item: True
    if isinstance(raw, str):
        exact = p.integer(params, "created")
        return lambda item: item["created"] == exact
    if not isinstance(raw, dict):
        raise p.parameter_invalid("created", "Invalid created filter.")
    bounds = {}
    for name in ("gt", "gte", "lt", "lte"):
        if name in raw:
            try:
                bounds[name] = int(raw[name])
            except (TypeError, ValueError):
                raise p.parameter_invalid(
                    f"created[{name}]", f"Invalid integer: {raw[name]}"
                ) from None
    unknown = set(raw) - {"gt", "gte", "lt", "lte"}
    if unknown:
        name = min(unknown)
        raise StripeFakeError(
            400, f"Received unknown parameter: created[{name}]", code="parameter_unknown"
        )

    def check(item: dict[str, Any]) -> bool:
        created = int(item["created"])
        return (
            ("gt" not in bounds or created > bounds["gt"])
            and ("gte" not in bounds or created >= bounds["gte"])
            and ("lt" not in bounds or created < bounds["lt"])
            and ("lte" not in bounds or created <= bounds["lte"])
        )

    return check


def listing(
    object_type: str, url: str, *, filters: tuple[str, ...] = ()
) -> Callable[..., dict[str, Any]]:
    """A list endpoint for one object type, with equality filters on the named fields."""

    def handler(fake: FakeStripe, store: Store, params: dict[str, Any]) -> dict[str, Any]:
        p.allow(params, (*LIST_PARAMS, *filters))
        in_range = created_filter(params) if "created" in params else (lambda _item: True)
        wanted = {name: p.string(params, name) for name in filters if p.string(params, name)}
        items = [
            item
            for item in fake.objects_of(store, object_type)
            if all(item.get(name) == value for name, value in wanted.items())
            and ("created" not in item or in_range(item))
        ]
        return page(items, params, url)

    return handler


def list_events(fake: FakeStripe, store: Store, params: dict[str, Any]) -> dict[str, Any]:
    p.allow(params, (*LIST_PARAMS, "type", "types", "delivery_success"))
    single = p.string(params, "type")
    several = p.string_list(params, "types")
    if single and several:
        message = "You cannot specify both type and types."
        raise StripeFakeError(400, message, param="types")
    patterns = several or ([single] if single else [])
    in_range = created_filter(params)
    delivered: bool | None = None
    if "delivery_success" in params:
        delivered = p.boolean(params, "delivery_success")

    def matches(event: dict[str, Any]) -> bool:
        if patterns and not any(_type_matches(event["type"], pattern) for pattern in patterns):
            return False
        if delivered is not None and (event["pending_webhooks"] == 0) != delivered:
            return False
        return in_range(event)

    events = sorted(store.events.values(), key=lambda event: store.order[event["id"]], reverse=True)
    return page([event for event in events if matches(event)], params, "/v1/events")


def _type_matches(event_type: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


def retrieve_event(
    fake: FakeStripe, store: Store, params: dict[str, Any], event_id: str
) -> dict[str, Any]:
    p.allow(params, ())
    event = store.events.get(event_id)
    if event is None:
        raise missing("event", event_id)
    return event
