"""The one name -> block-class registry, shared by the parser integration, the CLI and the docs."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterator

import torch.nn as nn

from .modules import DAS, NAM, SE, SimAM

__all__ = ["Registry", "BLOCKS", "did_you_mean"]


def did_you_mean(name: str, choices: list[str]) -> str:
    """Return a ``" Did you mean 'X'?"`` hint for the closest of ``choices`` (case-insensitive), or ``""``.

    Args:
        name (str): The unknown name.
        choices (list[str]): Known names.

    Returns:
        (str): The hint, with a leading space, or an empty string when nothing is close.
    """
    lower = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.5)
    return f" Did you mean '{lower[match[0]]}'?" if match else ""


class Registry:
    """A thread-safe name -> ``nn.Module`` subclass mapping with did-you-mean lookups.

    Attributes:
        kind (str): What the registry holds, for error messages.
    """

    def __init__(self, kind: str, blocks: dict[str, type[nn.Module]] | None = None):
        """Initialise the registry.

        Args:
            kind (str): What the registry holds, e.g. "attention block".
            blocks (dict, optional): Initial name -> class entries.
        """
        self.kind = kind
        self._lock = threading.Lock()
        self._items: dict[str, type[nn.Module]] = {}
        for name, cls in (blocks or {}).items():
            self.register(cls, name)

    def register(self, cls: type[nn.Module], name: str | None = None) -> type[nn.Module]:
        """Add a block class under ``name`` (default: its class name). Usable as a decorator.

        Args:
            cls (type[nn.Module]): The block class; its constructor must take input channels first.
            name (str, optional): YAML name; defaults to ``cls.__name__``.

        Returns:
            (type[nn.Module]): ``cls`` unchanged.
        """
        name = name or cls.__name__
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"Cannot register {cls!r} as {self.kind} '{name}': it is not an nn.Module subclass")
        if not name.isidentifier():
            raise ValueError(f"Cannot register {self.kind} '{name}': the name must be a Python identifier")
        with self._lock:
            if self._items.get(name, cls) is not cls:
                raise KeyError(f"{self.kind} '{name}' is already registered as {self._items[name]!r}")
            self._items[name] = cls
        return cls

    def get(self, name: str) -> type[nn.Module]:
        """Return the class registered under ``name``.

        Args:
            name (str): Registered name.

        Returns:
            (type[nn.Module]): The class.

        Raises:
            KeyError: Unknown name; the message lists the registered names and the closest match.
        """
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(self.unknown_message(name)) from None

    def unknown_message(self, name: str, extra: list[str] | None = None) -> str:
        """Build the error text for an unknown ``name``, suggesting the closest known one.

        Args:
            name (str): The unknown name.
            extra (list[str], optional): More valid names to suggest from (e.g. Ultralytics' own modules).

        Returns:
            (str): The message.
        """
        hint = did_you_mean(name, self.names() + list(extra or []))
        return f"Unknown {self.kind} '{name}'.{hint} Registered {self.kind}s: {', '.join(self.names())}."

    def names(self) -> list[str]:
        """Return the registered names in registration order."""
        return list(self._items)

    def items(self) -> list[tuple[str, type[nn.Module]]]:
        """Return ``(name, class)`` pairs in registration order."""
        return list(self._items.items())

    def classes(self) -> tuple[type[nn.Module], ...]:
        """Return the registered classes in registration order (ready for ``isinstance``)."""
        return tuple(self._items.values())

    def __contains__(self, name: object) -> bool:
        """Return whether ``name`` is registered."""
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        """Iterate over the registered names."""
        return iter(self.names())

    def __len__(self) -> int:
        """Return the number of registered blocks."""
        return len(self._items)


BLOCKS = Registry("attention block", {"NAM": NAM, "SimAM": SimAM, "SE": SE, "DAS": DAS})
