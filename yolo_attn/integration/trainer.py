"""Trainer integration: add the kit's callbacks to Ultralytics' default callbacks (every trainer copies them)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["install_callbacks"]


def install_callbacks(default_callbacks: dict[str, list[Callable]], kit_callbacks: dict[str, Callable]) -> None:
    """Append each kit callback to its event's default list once (idempotent).

    Args:
        default_callbacks (dict): ``ultralytics.utils.callbacks.base.default_callbacks``.
        kit_callbacks (dict): ``{event: fn}``.
    """
    for event, fn in kit_callbacks.items():
        handlers = default_callbacks.setdefault(event, [])
        if fn not in handlers:
            handlers.append(fn)
