"""Rating: what usage costs. A stub until prices exist: every amount is zero."""

from collections.abc import Iterable, Mapping
from decimal import Decimal

__all__ = ["price_usage"]

ZERO = Decimal("0.00")


def price_usage(subscription, rows: Iterable[Mapping]) -> dict[str, dict[str, Decimal]]:
    """``{meter: {"included", "billable", "amount"}}`` for ``rows`` of ``{meter, quantity}``
    (a subscription's usage summed per meter over a window)."""
    return {row["meter"]: {"included": ZERO, "billable": ZERO, "amount": ZERO} for row in rows}
