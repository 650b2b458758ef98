"""The one name -> block-class registry, shared by the parser integration, the CLI and the docs.

Blocks register where they are defined (``@BLOCKS.register`` in ``yolo_attn/modules/<block>.py``); third-party blocks
use the same call. This module imports no block: importing ``yolo_attn.modules`` fills the registry.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Iterator

import torch.nn as nn

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
        self._aliases: dict[str, str] = {}
        for name, cls in (blocks or {}).items():
            self.register(cls, name)

    def register(
        self, cls: type[nn.Module] | None = None, name: str | None = None, aliases: tuple[str, ...] | None = None
    ) -> type[nn.Module] | Callable[[type[nn.Module]], type[nn.Module]]:
        """Add a block class under ``name`` (default: its class name). Usable as ``@register`` or ``@register(...)``.

        Args:
            cls (type[nn.Module], optional): The block class; its constructor takes input channels first. Omit it to
                get a decorator.
            name (str, optional): YAML name; defaults to ``cls.__name__``.
            aliases (tuple[str, ...], optional): Other YAML names; default: the class's ``aliases`` attribute.

        Returns:
            (type[nn.Module] | Callable): ``cls`` unchanged, or the decorator.
        """
        if cls is None:
            return lambda c: self.register(c, name, aliases)
        name = name or cls.__name__
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"Cannot register {cls!r} as {self.kind} '{name}': it is not an nn.Module subclass")
        aliases = tuple(getattr(cls, "aliases", ()) if aliases is None else aliases)
        for n in (name, *aliases):
            if not n.isidentifier():
                raise ValueError(f"Cannot register {self.kind} '{n}': the name must be a Python identifier")
        with self._lock:
            if self._items.get(name, cls) is not cls:
                raise KeyError(f"{self.kind} '{name}' is already registered as {self._items[name]!r}")
            for a in aliases:
                taken = self._items.get(a) or self._items.get(self._aliases.get(a, ""))
                if taken is not None and taken is not cls:
                    raise KeyError(f"{self.kind} alias '{a}' of '{name}' is already taken by {taken!r}")
            self._items[name] = cls
            self._aliases.update({a: name for a in aliases})
        return cls

    def canonical(self, name: str) -> str:
        """Return the registered name for ``name`` or one of its aliases (``name`` itself when unknown)."""
        return self._aliases.get(name, name)

    def aliases(self, name: str | None = None) -> dict[str, str]:
        """Return ``{alias: registered name}``, for one block or all.

        Args:
            name (str, optional): A registered name; default: every block.

        Returns:
            (dict[str, str]): The aliases.
        """
        return {a: n for a, n in self._aliases.items() if name is None or n == name}

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
            return self._items[self.canonical(name)]
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
        hint = did_you_mean(name, self.names() + list(self._aliases) + list(extra or []))
        return f"Unknown {self.kind} '{name}'.{hint} Registered {self.kind}s: {', '.join(self.names())}."

    def names(self) -> list[str]:
        """Return the registered names, by the classes' ``rank`` (default 1000), then in registration order."""
        order = {n: i for i, n in enumerate(self._items)}
        return sorted(self._items, key=lambda n: (getattr(self._items[n], "rank", 1000), order[n]))

    def items(self) -> list[tuple[str, type[nn.Module]]]:
        """Return ``(name, class)`` pairs in the order of ``names()``."""
        return [(n, self._items[n]) for n in self.names()]

    def classes(self) -> tuple[type[nn.Module], ...]:
        """Return the registered classes in the order of ``names()`` (ready for ``isinstance``)."""
        return tuple(self._items[n] for n in self.names())

    def __contains__(self, name: object) -> bool:
        """Return whether ``name`` is registered (as a name or an alias)."""
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        """Iterate over the registered names."""
        return iter(self.names())

    def __len__(self) -> int:
        """Return the number of registered blocks."""
        return len(self._items)


BLOCKS = Registry("attention block")
"""The kit's blocks (filled as ``yolo_attn.modules`` is imported) and any registered by users."""
