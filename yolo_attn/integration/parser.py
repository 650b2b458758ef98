"""Parser integration: make registered blocks resolvable by name in Ultralytics' model-YAML parser.

``parse_model`` looks a row's module up with ``globals()[name]`` in ``ultralytics.nn.tasks`` and, for modules it does
not know, keeps the channel count (``c2 = ch[f]``) and calls ``module(*yaml_args)`` without the input channels. The
blocks preserve channels, so that bookkeeping is already right; what they lack is ``c1``. For each block a small
"row class" is placed in the parser's namespace: an ``nn.Module`` subclass (restricted loading only accepts those)
whose ``__new__`` reads ``ch[f]`` from the running ``parse_model`` frame and returns the real block, so models hold
only plain kit modules and pickle by their stable import paths. Every registered name and every alias the block
declares (the community's spellings, on the class's ``aliases``) gets a row class. ``parse_model`` itself is wrapped
only to check rows up front and turn bad names and arguments into clear errors; it is never copied.

Two row conventions are in use. The kit's: the arguments after the input channels, which the parser fills in
(``[-1, 1, Block, [16]]``). The community's, from hand-edited parsers that fill in nothing: the channel count first
(``[-1, 1, Block, [1024, 16]]``). A leading integer equal to the row's input channels, after width scaling
(``ch[f]``) or as the YAML writes them (a multiple of 8, ``c``, with ``make_divisible(min(c, max_channels) * width,
8) == ch[f]``, the parser's own rule, with the scale read from its running frame), is taken as that channel argument,
dropped, and logged once. Anything else goes to the block's declared argument ranges, whose ``ValueError`` is
raised naming the row, the argument and both conventions: a row never silently builds a different block than it
means.
"""

from __future__ import annotations

import inspect
import math
import numbers
import sys
import types
from collections.abc import Callable

import torch.nn as nn

from ..registry import BLOCKS, Registry, did_you_mean
from ..rows import earlier_range, inputs
from ._patch import patch

__all__ = ["UnknownModuleError", "community_args", "install_parser", "row_class"]


class UnknownModuleError(KeyError):
    """A model-YAML row names a module the parser cannot resolve (a ``KeyError``, as Ultralytics raises)."""

    def __str__(self) -> str:
        """Return the message without ``KeyError``'s quoting."""
        return str(self.args[0])


class _RowMeta(type):
    """Metaclass that makes a row class print as its block, so Ultralytics logs its import path (``yolo_attn...``)."""

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
    """Return the YAML arguments a block accepts, e.g. ``[reduction=16, divisor=8]`` (declared, else inspected)."""
    if callable(getattr(block, "signature", None)):
        return block.signature()
    params = list(inspect.signature(block.__init__).parameters.values())[2:]  # skip self, c1
    return "[" + ", ".join(f"{p.name}={p.default!r}" for p in params) + "]"


def _make_divisible(x: float, divisor: int = 8) -> int:
    """Ultralytics' ``make_divisible``: round ``x`` up to a multiple of ``divisor`` (the parser's width rule)."""
    return math.ceil(x / divisor) * divisor


def _is_channel_count(value: object, c1: int, width: float, max_channels: float) -> bool:
    """Return whether ``value`` is ``c1`` as written in a model YAML, before or after width scaling."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        return False
    if value == c1:
        return True
    # before scaling: YAMLs write multiples of 8 (64, 256, 1024, ...); without that condition a small argument such as
    # a kernel size 7 would read as the 8 channels it rounds up to
    return value % 8 == 0 and _make_divisible(min(value, max_channels) * width) == c1


_logged: set[tuple] = set()  # community rows already reported in this process


def community_args(name: str, block: type[nn.Module], args: tuple, c1: int, scaling: tuple[float, float]) -> tuple:
    """Drop a leading channel count (the community convention ``[C, *args]``) from a row's YAML arguments.

    A leading integer equal to the row's input channels, after width scaling or as the YAML writes them before
    scaling and ``max_channels``, is the channel argument that hand-edited parsers expect: it is dropped and what was
    understood is logged once. Anything else is left to the block's own argument checks.

    Args:
        name (str): The YAML name of the row.
        block (type[nn.Module]): The block class.
        args (tuple): The row's YAML arguments.
        c1 (int): The row's input channels (``ch[f]``).
        scaling (tuple[float, float]): ``(width, max_channels)`` of the model being parsed.

    Returns:
        (tuple): The arguments for ``block(c1, *args)``.
    """
    if not args or not _is_channel_count(args[0], c1, *scaling):
        return args
    key = (name, args, c1, scaling)
    if key not in _logged:
        _logged.add(key)
        from ultralytics.utils import LOGGER

        how = "" if args[0] == c1 else f" as written before width scaling ({c1} after)"
        LOGGER.warning(
            f"yolo-attn: read [{name}, {list(args)}] as the community convention (input channels first): "
            f"{args[0]} is the input channel count{how}, so the row builds "
            f"{block.__name__}({', '.join(map(repr, (c1, *args[1:])))}); "
            f"the kit's own form is [{name}, {list(args[1:])}]."
        )
    return args[1:]


def _conventions(name: str, block: type[nn.Module], c1: int, scaling: tuple[float, float]) -> str:
    """Describe the two accepted row conventions for an error message."""
    width, max_channels = scaling
    written = f" ({c1} after scaling)" if width != 1 or max_channels < c1 else ""
    return (
        f"A row takes either the kit's convention, the arguments {_signature_hint(block)} after the input channels, "
        f"which are filled in automatically (e.g. [{name}, []]), or the community convention, the input channel "
        f"count first as the YAML writes it{written} followed by those arguments."
    )


def _scaling(loc: dict) -> tuple[float, float]:
    """Return ``(width, max_channels)`` from the running ``parse_model``'s locals (names stable across 8.x)."""
    width, max_channels = loc.get("width", 1.0), loc.get("max_channels", float("inf"))
    return float(width or 1.0), float(max_channels or float("inf"))


def row_class(name: str, block: type[nn.Module], code: types.CodeType) -> type[nn.Module]:
    """Build the parser-facing row class for ``block``.

    Args:
        name (str): The YAML name (the block's registered name or one of its aliases).
        block (type[nn.Module]): The block class, constructed as ``block(c1, *yaml_args)``.
        code (types.CodeType): Code object of the original ``parse_model``, to find its frame.

    Returns:
        (type[nn.Module]): A class whose call returns ``block(ch[f], *args)`` (a leading channel count dropped).
    """

    def __new__(cls, *args):  # noqa: N807
        loc = _parser_frame(code).f_locals
        i, f = loc["i"], loc["f"]
        c1, scaling = loc["ch"][f], _scaling(loc)
        kept = community_args(name, block, args, c1, scaling)
        try:
            return block(c1, *kept)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"model YAML row {i} [{f}, {loc['n']}, {name}, {list(args)}]: {e}. "
                f"{_conventions(name, block, c1, scaling)}"
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
    try:
        inputs(i, f, single=True)  # an attention row refines one earlier layer
    except ValueError:
        low, high = earlier_range(i)
        raise ValueError(
            f"model YAML row {i} [{f}, {n}, {m}, {args}]: 'from' must be one earlier layer: an index in "
            f"[{low}, {high}] (a list of inputs needs a Concat row before {m})."
        ) from None
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
        _place(tasks, name, block, original.__code__)
        for alias in registry.aliases(name):
            _place(tasks, alias, block, original.__code__, alias_of=name)

    def hooked(original: Callable) -> Callable:
        def parse_model(d, ch, verbose=True):
            for i, row in enumerate(d.get("backbone", []) + d.get("head", [])):
                _check_row(i, row, tasks.__dict__, registry)
            return original(d, ch, verbose)

        return parse_model

    patch(tasks, "parse_model", hooked)


def _place(
    tasks: types.ModuleType, name: str, block: type[nn.Module], code: types.CodeType, alias_of: str = ""
) -> None:
    """Put the row class for ``block`` under ``name`` into the parser's namespace, refusing to shadow Ultralytics.

    Args:
        tasks (types.ModuleType): ``ultralytics.nn.tasks``.
        name (str): The YAML name.
        block (type[nn.Module]): The block class.
        code (types.CodeType): Code object of the original ``parse_model``.
        alias_of (str): The registered name when ``name`` is an alias: a taken alias is skipped with a warning
            (the block stays usable under its own name) instead of failing registration.
    """
    current = tasks.__dict__.get(name)
    if current is block or getattr(current, "block", None) is block:
        return  # already registered (or a fork that imports the block natively)
    if current is not None:
        if alias_of:
            from ultralytics.utils import LOGGER

            LOGGER.warning(
                f"yolo-attn: alias '{name}' of {alias_of} is not available in model YAMLs: ultralytics.nn.tasks "
                f"already defines {current!r}; write {alias_of} instead."
            )
            return
        raise RuntimeError(
            f"Cannot register attention block '{name}': ultralytics.nn.tasks already defines {current!r}. "
            f"Register the block under another name with yolo_attn.BLOCKS.register(cls, name)."
        )
    setattr(tasks, name, row_class(name, block, code))
