"""Kubernetes resource quantities for memory, parsed to and formatted from bytes.

Data only: no I/O. Memory quantities only (no CPU millis), as that is all the service ever changes.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["QUANTITY_PATTERN", "format_bytes", "parse_bytes"]

_SUFFIXES: dict[str, int] = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
QUANTITY_PATTERN = r"^\s*([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)\s*(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?\s*$"
"""What a memory quantity looks like (also the chart schema's pattern for one)."""

_QUANTITY = re.compile(QUANTITY_PATTERN)


def parse_bytes(quantity: str | int) -> int:
    """Parse a Kubernetes memory quantity ("512Mi", "1G", "1.5Gi", "1e9", 1024) into bytes.

    Rounds up, as the API server does when it canonicalizes a fractional byte count.
    Raises ValueError naming the bad quantity.
    """
    if isinstance(quantity, bool):
        raise ValueError(f"not a memory quantity: {quantity!r}")
    if isinstance(quantity, int):
        if quantity < 0:
            raise ValueError(f"memory quantity must not be negative: {quantity}")
        return quantity
    match = _QUANTITY.match(str(quantity))
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        value = Decimal(number)
    except InvalidOperation as e:
        raise ValueError(f"not a memory quantity: {quantity!r}") from e
    # "m" is milli: legal for memory in the API although nobody means it.
    scaled = value / 1000 if suffix == "m" else value * _SUFFIXES[suffix]
    if scaled < 0:
        raise ValueError(f"memory quantity must not be negative: {quantity!r}")
    integral = int(scaled)
    return integral if integral == scaled else integral + 1


def format_bytes(value: int) -> str:
    """Format bytes as the shortest exact binary quantity ("1536Mi"), else plain bytes.

    Exactness matters: the value written to the workload must be the value recorded in the ledger.
    """
    if value < 0:
        raise ValueError(f"memory quantity must not be negative: {value}")
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _SUFFIXES[suffix]
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)
