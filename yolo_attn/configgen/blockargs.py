"""The block of a generated config: its registered name, its YAML arguments (checked against the declared ``args``)
and the extra top-level keys it declares for generated configs (``config_params``)."""

from __future__ import annotations

import ast
import dataclasses
from typing import Any

import torch.nn as nn
import yaml

from ..registry import BLOCKS
from .lookup import read_yaml

__all__ = ["block_name", "check_args", "config_docs", "config_params", "parse_args"]


def parse_args(value: str) -> list:
    """Parse a command-line ``args=`` value: ``[16]``, ``16,8``, ``True`` or ``0.1`` -> a list.

    Strings that read as Python literals become numbers, as Ultralytics' parser does with YAML args (``1e-4``).

    Args:
        value (str): The text after ``args=``.

    Returns:
        (list): The block arguments.
    """
    text = value.strip()
    try:
        parsed = read_yaml(text if text.startswith("[") else f"[{text}]")
    except yaml.YAMLError:
        raise ValueError(f"args: cannot parse {value!r} as a list; write e.g. args=[16] or args=16,8") from None
    if not isinstance(parsed, list):
        raise ValueError(f"args: expected a list such as [16], got {value!r}")
    out = []
    for a in parsed:
        if isinstance(a, str):
            try:
                a = ast.literal_eval(a)
            except (ValueError, SyntaxError):
                pass
        out.append(a)
    return out


def block_name(block: str) -> str:
    """Return the registered name for ``block``: a name or alias, case-insensitive.

    Args:
        block (str): The name as given.

    Returns:
        (str): The registered name.

    Raises:
        KeyError: Unknown (or, case-insensitively, ambiguous) name, with the registry's did-you-mean.
    """
    if block in BLOCKS:
        return BLOCKS.canonical(block)
    spellings = [(n, n) for n in BLOCKS.names()] + list(BLOCKS.aliases().items())
    matches = {name for spelling, name in spellings if spelling.lower() == str(block).lower()}
    if len(matches) == 1:
        return matches.pop()
    raise KeyError(BLOCKS.unknown_message(str(block)))


def flow_args(args: list) -> str:
    """Write arguments as the user would type them on the command line: ``[16,8]``."""
    return "[" + ",".join(map(str, args)) + "]"


def _signature(cls: type[nn.Module]) -> str:
    """Return the block's YAML arguments with defaults (``[reduction=16, divisor=8]``), or ``""`` if undeclared."""
    return cls.signature() if hasattr(cls, "signature") else ""


def check_args(name: str, args: object) -> list:
    """Return the block arguments for a generated config, checked against the block's declared ``args``.

    Arguments bounded by the input channels are checked against that bound when the model is built (the channels
    differ per row); everything else is checked here.

    Args:
        name (str): Registered block name.
        args (object): A list, one value, or None for the block's ``config_args`` (its generated-config default).

    Returns:
        (list): The arguments.

    Raises:
        ValueError: Too many arguments, or a value outside its declared range; the message names the argument and
            the block's signature.
    """
    cls = BLOCKS.get(name)
    if args is None:
        return list(getattr(cls, "config_args", ()))
    args = list(args) if isinstance(args, (list, tuple)) else [args]
    declared = getattr(cls, "args", None)
    if declared is None:  # a registered nn.Module outside the contract: let it check itself once
        try:
            cls(64, *args)
        except (TypeError, ValueError) as e:
            raise ValueError(f"args {args} for {name}: {e}") from None
        return args
    if len(args) > len(declared):
        raise ValueError(
            f"{name}: too many arguments args={flow_args(args)}: {name} takes at most {len(declared)}, "
            f"{_signature(cls)}"
        )
    for arg, value in zip(declared, args):
        relaxed = dataclasses.replace(arg, high=None) if arg.high == "c1" else arg
        try:
            relaxed.check(name, value, 0)
        except ValueError:
            raise ValueError(
                f"{name}: argument '{arg.name}' must be {arg.describe()}, got {value!r} (args={flow_args(args)}; "
                f"{name} takes the YAML arguments {_signature(cls)})"
            ) from None
    return args


def config_params(name: str) -> dict[str, Any]:
    """Return the extra top-level keys the block declares for generated configs (``config_params``)."""
    return dict(getattr(BLOCKS.get(name), "config_params", {}))


def config_docs(name: str) -> dict[str, str]:
    """Return the comments the block declares for those keys (``config_docs``; none when undeclared)."""
    return dict(getattr(BLOCKS.get(name), "config_docs", {}))
