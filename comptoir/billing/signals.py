"""What billing tells the layers above it (Flask signals, synchronous, in the same transaction).

Billing never imports the storefront. When sold units come back (a cancellation, a refund of
lines with restocking), it sends :data:`order_cancelled` or :data:`order_refunded`; the storefront
listens and gives the units back to the catalog inside the same transaction, so the stock and the
refund commit or roll back together.

Receivers are called as ``receiver(sender, organization_id=..., order=..., returned=[...])``
where ``returned`` is a list of :class:`ReturnedUnits`.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask.signals import Namespace

_signals = Namespace()

order_cancelled = _signals.signal("comptoir.billing.order-cancelled")
order_refunded = _signals.signal("comptoir.billing.order-refunded")


@dataclass(frozen=True)
class ReturnedUnits:
    article_id: int | None
    variant_id: int | None
    quantity: int
