"""``yolo-attn``: Ultralytics' ``yolo`` command with the attention blocks registered, plus the kit's own commands.

    yolo-attn train model=yolov8n-nam.yaml data=digits.yaml epochs=10 imgsz=160   # any `yolo` mode/syntax
    yolo-attn list                                                                # blocks and ready-made configs
    yolo-attn data [root=DIR] [n_train=256] [n_val=64] [imgsz=160] [seed=0]      # write the built-in dataset
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from unittest import mock

from . import __version__
from .integration import DATA_NAME, list_configs, register
from .registry import BLOCKS

__all__ = ["main", "KIT_OPTIONS"]

# key=value options the kit consumes before Ultralytics sees the arguments: {key: fn(value)}
KIT_OPTIONS: dict[str, Callable[[str], None]] = {}


def _kv(args: list[str]) -> dict[str, str]:
    """Parse ``key=value`` arguments, rejecting anything else with a clear message."""
    out = {}
    for a in args:
        key, sep, value = a.partition("=")
        if not sep or not key:
            raise SystemExit(f"yolo-attn: expected key=value, got '{a}'")
        out[key] = value
    return out


def cmd_list(args: list[str]) -> None:
    """Print the registered blocks and the ready-made configs."""
    print(f"yolo-attn {__version__}\n\nRegistered attention blocks (YAML row: [from, n, NAME, [args]]):")
    for name, cls in BLOCKS.items():
        doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip().splitlines()[0]
        print(f"  {name:<8} {cls.__module__ + '.' + cls.__qualname__:<32} {doc}")
    print("\nReady-made configs (add a scale letter n/s/m/l/x: yolov8n-nam.yaml):")
    for path in list_configs():
        print(f"  {path.name:<22} {path}")
    print(f"\nBuilt-in dataset: data={DATA_NAME} (generated offline on first use)")


def cmd_data(args: list[str]) -> None:
    """Generate the built-in dataset and print its data YAML path."""
    from .data import digits_yaml

    kw = _kv(args)
    root = kw.pop("root", None)
    try:
        params = {k: int(v) for k, v in kw.items()}
    except ValueError as e:
        raise SystemExit(f"yolo-attn data: numeric values expected ({e})") from None
    print(digits_yaml(root, **params))


COMMANDS: dict[str, Callable[[list[str]], None]] = {"list": cmd_list, "data": cmd_data}


def _strip_kit_options(args: list[str]) -> list[str]:
    """Apply and remove the kit's own ``key=value`` options, so Ultralytics' argument check never sees them."""
    rest = []
    for a in args:
        key, sep, value = a.partition("=")
        if sep and key in KIT_OPTIONS:
            KIT_OPTIONS[key](value)
        else:
            rest.append(a)
    return rest


def main(argv: list[str] | None = None) -> None:
    """Run ``yolo-attn``.

    Args:
        argv (list[str], optional): Arguments without the program name; defaults to ``sys.argv[1:]``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return COMMANDS[args[0]](args[1:])
    register()
    args = _strip_kit_options(args)
    from ultralytics import cfg

    if not args or args[0] in {"help", "-h", "--help"}:
        print(__doc__)
    with mock.patch.object(cfg, "ARGV", ["yolo-attn", *args]):  # entrypoint() reads the module-level ARGV
        cfg.entrypoint()


if __name__ == "__main__":
    main()
