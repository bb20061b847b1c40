"""Time limits and memory sizes as schedulers write them, read and written back.

A retry policy scales an attempt's time limit or memory by a factor, so both must be read
from whatever the user wrote (an option or a script directive) and written in a form the
scheduler accepts. Schedulers differ only in the unit of a bare number (minutes or seconds,
megabytes or bytes), which each dialect states.
"""
from __future__ import annotations

import math
import re

from .errors import OptionError

_MEM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)?\s*$", re.IGNORECASE)
_POWERS = {"": None, "k": -1, "m": 0, "g": 1, "t": 2, "p": 3}


#: Words for "no limit": nothing to scale.
UNLIMITED = ("unlimited", "infinite", "inf")


def seconds(text: "str | int | float", bare: float = 1.0) -> float:
    """A duration in seconds from ``[days-]hours:minutes:seconds``, ``minutes:seconds``,
    ``days-hours[:minutes]``, PBS's ``days:hours:minutes:seconds`` or a bare number (worth
    ``bare`` seconds each)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text) * bare
    value = str(text).strip()
    try:
        days, _, rest = value.rpartition("-")
        parts = [float(p) for p in rest.split(":")]
        day_seconds = float(days) * 86400 if days else 0.0
        if days:   # days-hours[:minutes[:seconds]]
            parts += [0.0] * (3 - len(parts))
            return day_seconds + parts[0] * 3600 + parts[1] * 60 + parts[2]
        if len(parts) == 1:
            return parts[0] * bare
        if len(parts) == 2:
            return parts[0] * 60 + parts[1]
        if len(parts) == 3:
            return parts[0] * 3600 + parts[1] * 60 + parts[2]
        if len(parts) == 4:
            return parts[0] * 86400 + parts[1] * 3600 + parts[2] * 60 + parts[3]
    except ValueError:
        pass
    raise OptionError(f"cannot read the time limit {text!r}; write it as hours:minutes:seconds, "
                      "e.g. '1:30:00', or days-hours:minutes:seconds")


def clock(total: float) -> str:
    """Seconds as ``H:MM:SS`` (hours may exceed 24; every scheduler reads this form)."""
    total = int(math.ceil(total))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def megabytes(text: "str | int | float", bare: float = 1.0, decimal_lower: bool = False) -> float:
    """A memory size in MiB from ``4G``, ``4096M``, ``4gb``, ``512K`` or a bare number (worth
    ``bare`` MiB each). ``decimal_lower``: ``k``, ``m``, ``g`` are powers of 1000 (Grid
    Engine's reading), the capitals powers of 1024."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text) * bare
    match = _MEM.match(str(text))
    if not match:
        raise OptionError(f"cannot read the memory size {text!r}; write it like '4G' or '4096M'")
    number, unit = float(match.group(1)), match.group(2)
    power = _POWERS[unit.lower()]
    if power is None:
        return number * bare
    if decimal_lower and unit.islower():
        return number * 1000.0 ** (power + 2) / 2**20
    return number * 1024.0 ** power


def scaled(value: str | None, factor: float, cap: float | None, parse, write) -> str | None:
    """``value`` (text) times ``factor``, at most ``cap``, written back; None if unknown
    (not given, unlimited, or not in a form this scheduler writes)."""
    if value is None or value.strip().lower() in UNLIMITED:
        return None
    try:
        new = parse(value) * factor
    except OptionError:
        return None
    if cap is not None:
        new = min(new, cap)
    return write(new)
