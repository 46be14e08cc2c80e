"""Tools of the invoice-extract example."""

from __future__ import annotations

from pydantic import BaseModel


class InvoiceLine(BaseModel):
    description: str
    quantity: float
    unit_price: float
    amount: float


class Invoice(BaseModel):
    invoice_number: str
    vendor: str
    currency: str
    lines: list[InvoiceLine]
    tax: float | None = None
    total: float


class TotalsCheck(BaseModel):
    ok: bool
    lines_total: float
    expected_total: float
    difference: float


def check_totals(invoice: Invoice, tolerance: float = 0.01) -> TotalsCheck:
    """Do the lines (quantity x unit price) and the tax add up to the invoice total?

    Args:
        invoice: The extracted invoice.
        tolerance: Largest difference still accepted as rounding.
    """
    lines_total = round(sum(line.quantity * line.unit_price for line in invoice.lines), 2)
    expected = round(lines_total + (invoice.tax or 0.0), 2)
    difference = round(invoice.total - expected, 2)
    return TotalsCheck(
        ok=abs(difference) <= tolerance,
        lines_total=lines_total,
        expected_total=expected,
        difference=difference,
    )
