"""Argument checks shared by the blocks: every error names the block, the argument and the allowed range."""

from __future__ import annotations

import numbers

__all__ = ["check_channels", "check_number", "check_bool"]


def check_channels(block: str, c1: object) -> int:
    """Return ``c1`` as an int after checking it is a positive channel count.

    Args:
        block (str): Block name used in the error message.
        c1 (object): Input channel count.

    Returns:
        (int): The validated channel count.
    """
    if isinstance(c1, bool) or not isinstance(c1, numbers.Integral) or c1 < 1:
        raise ValueError(f"{block}: argument 'c1' (input channels) must be an integer >= 1, got {c1!r}")
    return int(c1)


def check_number(
    block: str, name: str, value: object, low: float, high: float = float("inf"), low_open: bool = False, integer: bool = False
) -> float:
    """Return ``value`` after checking it is a number in ``[low, high]`` (``(low, high]`` when ``low_open``).

    Args:
        block (str): Block name used in the error message.
        name (str): Argument name used in the error message.
        value (object): Value to check.
        low (float): Lower bound.
        high (float): Upper bound (inclusive).
        low_open (bool): Exclude ``low`` itself.
        integer (bool): Require an integer.

    Returns:
        (float | int): The validated value.
    """
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high and value == value  # value == value: not NaN
    if not ok:
        lo = f"{'>' if low_open else '>='} {low}"
        hi = "" if high == float("inf") else f" and <= {high}"
        what = "an integer" if integer else "a number"
        raise ValueError(f"{block}: argument '{name}' must be {what} {lo}{hi}, got {value!r}")
    return int(value) if integer else float(value)


def check_bool(block: str, name: str, value: object) -> bool:
    """Return ``value`` after checking it is a bool (YAML ``true``/``false``).

    Args:
        block (str): Block name used in the error message.
        name (str): Argument name used in the error message.
        value (object): Value to check.

    Returns:
        (bool): The validated flag.
    """
    if not isinstance(value, bool):
        raise ValueError(f"{block}: argument '{name}' must be true or false, got {value!r}")
    return value
