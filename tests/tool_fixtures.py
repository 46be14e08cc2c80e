"""Functions importable from the Python path (``tests.tool_fixtures:...``) for tool tests."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from pydantic import BaseModel, Field


class Priority(str, Enum):
    low = "low"
    high = "high"


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str
    country: str = "FR"


class Quote(BaseModel):
    amount: float
    currency: str
    express: bool


def shipping_quote(
    address: Address, weight_kg: float, priority: Priority = Priority.low, note: str | None = None
) -> Quote:
    """Quote the shipping cost of a parcel.

    Args:
        address: Where the parcel goes.
        weight_kg: The parcel's weight in kilograms.
        priority: How fast it must arrive.
    """
    price = 5.0 + 2.0 * weight_kg + (10.0 if priority is Priority.high else 0.0)
    return Quote(
        amount=price,
        currency="EUR" if address.country == "FR" else "USD",
        express=priority is Priority.high,
    )


def word_count(text: str, min_length: Annotated[int, Field(ge=1)] = 1) -> int:
    """Count the words of a text."""
    return sum(1 for w in text.split() if len(w) >= min_length)


def show_types(count: int, text: str) -> str:
    """What arrived, with its type (check_args: false passes what a hint refuses)."""
    return f"count {type(count).__name__} {count}; text {type(text).__name__} {text}"
