"""Tools of the support-triage example: a tiny in-memory customer and order database."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Customer(BaseModel):
    id: str
    name: str
    plan: Literal["free", "pro", "enterprise"]
    open_orders: list[str]


_CUSTOMERS = {
    "c1": Customer(id="c1", name="Ada Lovelace", plan="pro", open_orders=["A1001", "A1002"]),
    "c2": Customer(id="c2", name="Alan Turing", plan="free", open_orders=[]),
}
_ORDERS = {
    "A1001": {"id": "A1001", "item": "Noise-cancelling headphones", "status": "shipped"},
    "A1002": {"id": "A1002", "item": "USB-C cable", "status": "processing"},
}
_TRACKING = {"A1001": {"carrier": "UPS", "eta": "2025-03-14", "last_scan": "Lyon hub"}}


def get_customer(customer_id: str) -> Customer:
    """The customer's profile and open orders."""
    if customer_id not in _CUSTOMERS:
        raise LookupError(f"no customer {customer_id}")
    return _CUSTOMERS[customer_id]


def lookup_order(order_id: str) -> dict:
    """Find an order by id.

    Args:
        order_id: The order id, like A1001.
    """
    if order_id not in _ORDERS:
        raise LookupError(f"no order {order_id}")
    return _ORDERS[order_id]


def shipping_status(order_id: str, carrier: str | None = None) -> dict:
    """Where a shipped order is now and when it should arrive.

    Args:
        order_id: The order id, like A1001.
        carrier: Only look at this carrier's data.
    """
    status = _TRACKING.get(order_id)
    if status is None or (carrier and status["carrier"] != carrier):
        return {"order_id": order_id, "status": "no tracking data yet"}
    return {"order_id": order_id, **status}
