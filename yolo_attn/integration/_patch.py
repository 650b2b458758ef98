"""The one way the kit replaces an Ultralytics attribute: wrap it, mark the wrapper, never stack wrappers."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["MARK", "patch"]

MARK = "_yolo_attn"  # set on every kit wrapper; its __wrapped__ is the Ultralytics original
_lock = threading.Lock()


def patch(owner: Any, name: str, wrap: Callable[[Callable], Callable]) -> Callable:
    """Set ``owner.name`` to ``wrap(original)``, where ``original`` is the Ultralytics attribute (thread-safe, once).

    Patching an attribute the kit has already patched keeps that wrapper (``register()`` may run any number of
    times without stacking wrappers); wrappers read the registry they were given when called, so blocks added to it
    later are seen.

    Args:
        owner (Any): Module or class holding the attribute.
        name (str): Attribute name.
        wrap (Callable[[Callable], Callable]): Returns the replacement for the original function.

    Returns:
        (Callable): The wrapper in place.
    """
    with _lock:
        current = getattr(owner, name)
        if getattr(current, MARK, False):
            return current
        wrapper = functools.wraps(current)(wrap(current))
        setattr(wrapper, MARK, True)
        setattr(owner, name, wrapper)
        return wrapper
