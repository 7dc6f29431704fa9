"""Kubernetes resource quantities ("250m", "1.5", "512Mi", "1G", "1e3") as integers, and back.

Follows ``k8s.io/apimachinery/pkg/api/resource``: a signed decimal number followed by a binary
SI suffix (Ki Mi Gi Ti Pi Ei), a decimal SI suffix (n u m "" k M G T P E) or a decimal exponent
(``e3``, ``E-2``). Values are exact (``Decimal``) and round up to the unit asked for, as
``Quantity.MilliValue()`` and ``Quantity.Value()`` do, so "0.1m" of CPU is 1 millicore.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")


def parse_quantity(quantity: str | int | float) -> Decimal:
    """The exact value of a quantity in base units (cores, bytes). ``ValueError`` if invalid."""
    if isinstance(quantity, bool):
        raise ValueError(f"not a quantity: {quantity!r}")
    if isinstance(quantity, int | float):
        return Decimal(str(quantity))
    match = _QUANTITY.match(quantity.strip())
    if match is None:
        raise ValueError(f"not a quantity: {quantity!r}")
    number, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation as error:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"not a quantity: {quantity!r}") from error
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix in _DECIMAL:
        return value * _DECIMAL[suffix]
    if exponent := _EXPONENT.match(suffix):
        return value.scaleb(int(exponent.group(1)))
    raise ValueError(f"not a quantity: {quantity!r} (unknown suffix {suffix!r})")


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def parse_cpu_millicores(quantity: str | int | float) -> int:
    """CPU in millicores: "250m" → 250, "1.5" → 1500, "0.1m" → 1 (rounded up)."""
    return _ceil(parse_quantity(quantity) * 1000)


def parse_memory_bytes(quantity: str | int | float) -> int:
    """Memory in bytes: "512Mi" → 536870912, "1G" → 10**9, "1e3" → 1000 (rounded up)."""
    return _ceil(parse_quantity(quantity))


def format_cpu(millicores: int) -> str:
    """The canonical form the API server would store: 1500 → "1500m", 2000 → "2"."""
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def format_memory(bytes_: int) -> str:
    """Binary suffixes where exact (536870912 → "512Mi"), otherwise plain bytes."""
    for suffix, factor in reversed(_BINARY.items()):
        if bytes_ and bytes_ % factor == 0:
            return f"{bytes_ // factor}{suffix}"
    return str(bytes_)
