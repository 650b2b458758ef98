"""Parser integration: make registered blocks resolvable by name in Ultralytics' model-YAML parser.

``parse_model`` looks a row's module up with ``globals()[name]`` in ``ultralytics.nn.tasks`` and, for modules it does
not know, keeps the channel count (``c2 = ch[f]``) and calls ``module(*yaml_args)`` without the input channels. The
blocks preserve channels, so that bookkeeping is already right; what they lack is ``c1``. For each block a small
"row class" is placed in the parser's namespace: an ``nn.Module`` subclass (restricted loading only accepts those)
whose ``__new__`` reads ``ch[f]`` from the running ``parse_model`` frame and returns the real block, so models hold
only plain kit modules and pickle by their stable import paths. ``parse_model`` itself is wrapped only to check rows
up front and turn bad names and arguments into clear errors; it is never copied.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
from collections.abc import Callable

import torch.nn as nn

from ..registry import BLOCKS, Registry, did_you_mean

__all__ = ["UnknownModuleError", "install_parser", "row_class"]


class UnknownModuleError(KeyError):
    """A model-YAML row names a module the parser cannot resolve (a ``KeyError``, as Ultralytics raises)."""

    def __str__(self) -> str:
        """Return the message without ``KeyError``'s quoting."""
        return str(self.args[0])


class _RowMeta(type):
    """Metaclass that makes a row class print as its block, so Ultralytics logs ``yolo_attn.modules.nam.NAM``."""

    def __repr__(cls) -> str:
        block = cls.block  # type: ignore[attr-defined]
        return f"<class '{block.__module__}.{block.__qualname__}'>"


def _parser_frame(code: types.CodeType) -> types.FrameType:
    """Return the innermost running ``parse_model`` frame (the call may sit in a generator when ``n > 1``)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    if frame is None:
        raise RuntimeError("yolo-attn row classes are built by Ultralytics' parse_model; use yolo_attn.<Block> directly")
    return frame


def _signature_hint(block: type[nn.Module]) -> str:
    """Return the YAML arguments a block accepts, e.g. ``[reduction=16, divisor=8]``."""
    params = list(inspect.signature(block.__init__).parameters.values())[2:]  # skip self, c1
    return "[" + ", ".join(f"{p.name}={p.default!r}" for p in params) + "]"


def row_class(name: str, block: type[nn.Module], code: types.CodeType) -> type[nn.Module]:
    """Build the parser-facing row class for ``block``.

    Args:
        name (str): The YAML name.
        block (type[nn.Module]): The block class, constructed as ``block(c1, *yaml_args)``.
        code (types.CodeType): Code object of the original ``parse_model``, to find its frame.

    Returns:
        (type[nn.Module]): A class whose call returns ``block(ch[f], *args)``.
    """

    def __new__(cls, *args):  # noqa: N807
        loc = _parser_frame(code).f_locals
        i, f = loc["i"], loc["f"]
        try:
            return block(loc["ch"][f], *args)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"model YAML row {i} [{f}, {loc['n']}, {name}, {list(args)}]: {e}. "
                f"{name} takes the YAML arguments {_signature_hint(block)} after the input channels, "
                "which are filled in automatically."
            ) from None

    ns = {"__new__": __new__, "block": block, "__module__": __name__, "__doc__": f"Parser row for {block.__name__}."}
    return _RowMeta(name, (nn.Module,), ns)


def _resolvable(name: str, namespace: dict) -> bool:
    """Return whether ``parse_model`` can resolve ``name`` (its ``nn.``/``torchvision.ops.``/globals lookup)."""
    if name.startswith("nn.") or name.startswith("torchvision.ops."):
        return True  # resolved by getattr; Ultralytics reports a bad attribute itself
    return name in namespace


def _check_row(i: int, row: object, namespace: dict, registry: Registry) -> None:
    """Raise a clear error for a malformed row, an unknown module name, or a bad attention-block row."""
    if not isinstance(row, (list, tuple)) or len(row) != 4:
        raise ValueError(f"model YAML row {i} must be [from, repeats, module, args], got {row!r}")
    f, n, m, args = row
    if not isinstance(m, str):
        return
    if not _resolvable(m, namespace):
        known = [k for k, v in namespace.items() if isinstance(v, type) and issubclass(v, nn.Module)]
        raise UnknownModuleError(
            f"model YAML row {i}: unknown module '{m}'.{did_you_mean(m, registry.names() + known)} "
            f"Registered attention blocks: {', '.join(registry.names())} (yolo-attn); other names must be "
            "Ultralytics modules, nn.<Module> or torchvision.ops.<Op>."
        )
    if m not in registry:
        return
    if isinstance(f, bool) or not isinstance(f, int) or not (f == -1 if i == 0 else -i <= f < i):
        raise ValueError(
            f"model YAML row {i} [{f}, {n}, {m}, {args}]: 'from' must be one earlier layer: an index in "
            f"[{-max(i, 1)}, {max(i - 1, -1)}] (a list of inputs needs a Concat row before {m})."
        )
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"model YAML row {i} [{f}, {n}, {m}, {args}]: repeats must be an integer >= 1")
    if not isinstance(args, list):
        raise ValueError(f"model YAML row {i} [{f}, {n}, {m}, {args}]: args must be a list, e.g. []")


def install_parser(tasks: types.ModuleType, registry: Registry = BLOCKS) -> None:
    """Place a row class for every registered block into ``tasks`` and wrap ``tasks.parse_model`` once.

    Args:
        tasks (types.ModuleType): ``ultralytics.nn.tasks``.
        registry (Registry): The blocks to expose.
    """
    original: Callable = getattr(tasks.parse_model, "__wrapped__", tasks.parse_model)
    for name, block in registry.items():
        current = tasks.__dict__.get(name)
        if current is block or getattr(current, "block", None) is block:
            continue  # already registered (or a fork that imports the block natively)
        if current is not None:
            raise RuntimeError(
                f"Cannot register attention block '{name}': ultralytics.nn.tasks already defines {current!r}. "
                f"Register the block under another name with yolo_attn.BLOCKS.register(cls, name)."
            )
        setattr(tasks, name, row_class(name, block, original.__code__))
    if getattr(tasks.parse_model, "__wrapped__", None) is original:
        return

    @functools.wraps(original)
    def parse_model(d, ch, verbose=True):
        for i, row in enumerate(d.get("backbone", []) + d.get("head", [])):
            _check_row(i, row, tasks.__dict__, registry)
        return original(d, ch, verbose)

    tasks.parse_model = parse_model
