"""Kubernetes resource quantities (`3750m`, `8Gi`, `1.5`), parsed so requests and limits can be compared."""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
}
_QUANTITY = re.compile(r"^(?P<number>\d+(\.\d+)?)(?P<suffix>m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def quantity(text: str) -> Decimal:
    """The value of a quantity in base units (cores, bytes). Raises ValueError for anything else."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{text} is not a quantity")
    return Decimal(match["number"]) * _SUFFIXES[match["suffix"] or ""]
