"""``yolo-attn``: Ultralytics' ``yolo`` command with the attention blocks registered, plus the kit's own commands.

    yolo-attn train model=yolov8n-nam.yaml data=digits.yaml epochs=10 imgsz=160   # any `yolo` mode/syntax
    yolo-attn list                                                                # blocks and ready-made configs
    yolo-attn data [root=DIR] [n_train=256] [n_val=64] [imgsz=160] [seed=0]      # write the built-in dataset
    yolo-attn saliency model=best.pt [threshold=0.01]                             # NAM channel saliency report
    yolo-attn bench [models=a.yaml,b.yaml] [seeds=0,1] [budget=30] [epochs=N] [out=bench]  # ablation table, plot
    yolo-attn visualize model=best.pt source=img.jpg out=DIR [imgsz=640] [alpha=0.5] [tile=256]  # attention maps
    yolo-attn make-config base=yolov8-seg.yaml block=NAM at=backbone|neck|all|2,4 [args=[...]] out=FILE  # config
    yolo-attn prune model=best.pt ratio=0.3 out=pruned.pt [round=8] [min_channels=8] [imgsz=640]  # slim channels

Kit options accepted with train (removed before Ultralytics' argument check):
    nam_penalty=1e-4         NAM's L1 sparsity penalty p (overrides the model YAML's nam_penalty; 0 turns it off)
    nam_penalty_scope=nam    'nam': NAM scale factors; 'all': every BatchNorm2d weight too (network slimming)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from unittest import mock

from . import __version__
from .integration import DATA_NAME, list_configs, register
from .registry import BLOCKS
from .training.penalty import ENV_PENALTY, ENV_SCOPE, check_penalty, check_scope

__all__ = ["main", "KIT_OPTIONS"]


def _set_env(name: str, check: Callable[[str], object]) -> Callable[[str], None]:
    """Return a handler that validates a kit option and hands it to the trainer (and DDP workers) via ``name``."""

    def handler(value: str) -> None:
        try:
            os.environ[name] = str(check(value))
        except ValueError as e:
            raise SystemExit(f"yolo-attn: {e}") from None

    return handler


# key=value options the kit consumes before Ultralytics sees the arguments: {key: fn(value)}
KIT_OPTIONS: dict[str, Callable[[str], None]] = {
    "nam_penalty": _set_env(ENV_PENALTY, check_penalty),
    "nam_penalty_scope": _set_env(ENV_SCOPE, check_scope),
}


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
        also = f" (also: {', '.join(BLOCKS.aliases(name))})" if BLOCKS.aliases(name) else ""
        print(f"  {name:<8} {cls.__module__ + '.' + cls.__qualname__:<32} {doc}{also}")
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


def cmd_saliency(args: list[str]) -> None:
    """Print the NAM channel saliency of a checkpoint."""
    from .training import SPARSITY_THRESHOLD, format_saliency, nam_saliency

    kw = _kv(args)
    if "model" not in kw:
        raise SystemExit("yolo-attn saliency: model=path/to/best.pt is required")
    try:
        threshold = float(kw.get("threshold", SPARSITY_THRESHOLD))
    except ValueError:
        raise SystemExit(f"yolo-attn saliency: threshold must be a number, got {kw['threshold']!r}") from None
    print(format_saliency(nam_saliency(kw["model"], threshold), threshold))


def cmd_visualize(args: list[str]) -> None:
    """Write each attention layer's gate map over an image (one PNG per layer and a contact sheet); print the paths."""
    from .visualize import visualize

    kw = _kv(args)
    missing = [k for k in ("model", "source", "out") if k not in kw]
    if missing:
        need = ", ".join(f"{k}=..." for k in missing)
        raise SystemExit(f"yolo-attn visualize: {need} required (model=best.pt source=image.jpg out=DIR)")
    unknown = set(kw) - {"model", "source", "out", "imgsz", "alpha", "tile"}
    if unknown:
        bad = ", ".join(sorted(unknown))
        raise SystemExit(
            f"yolo-attn visualize: unknown option(s) {bad}; expected model, source, out, imgsz, alpha, tile"
        )
    try:
        imgsz, alpha, tile = int(kw.get("imgsz", 640)), float(kw.get("alpha", 0.5)), int(kw.get("tile", 256))
    except ValueError as e:
        raise SystemExit(f"yolo-attn visualize: imgsz and tile must be integers, alpha a number ({e})") from None
    try:
        paths = visualize(kw["model"], kw["source"], kw["out"], imgsz=imgsz, alpha=alpha, tile=tile)
    except (FileNotFoundError, TypeError, ValueError) as e:
        raise SystemExit(f"yolo-attn visualize: {e}") from None
    print("\n".join(str(p) for p in paths))


def _bench_options(kw: dict[str, str]) -> dict:
    """Convert ``yolo-attn bench`` key=value strings to ``run_bench`` arguments, naming any bad value."""

    def ints(v: str) -> list[int]:
        return [int(x) for x in v.split(",")]

    def flag(v: str) -> bool:
        if v.lower() not in {"true", "false"}:
            raise ValueError(v)
        return v.lower() == "true"

    parse = {  # key: (converter, what it must be)
        "models": (lambda v: [m for m in v.split(",") if m], "a comma-separated list of model YAMLs"),
        "seeds": (ints, "a comma-separated list of integers, e.g. 0,1"),
        "budget": (float, "a number of minutes"),
        "epochs": (int, "an integer"),
        "imgsz": (int, "an integer"),
        "batch": (int, "an integer"),
        "latency_imgsz": (int, "an integer"),
        "latency_repeats": (int, "an integer"),
        "verbose": (flag, "true or false"),
        "data": (str, "a data YAML"),
        "device": (str, "a device"),
        "out": (str, "a directory"),
    }
    unknown = sorted(set(kw) - set(parse))
    if unknown:
        raise SystemExit(f"yolo-attn bench: unknown option(s) {', '.join(unknown)}; expected {', '.join(parse)}")
    opts = {}
    for key, value in kw.items():
        convert, what = parse[key]
        try:
            opts[key] = convert(value.strip())
        except ValueError:
            raise SystemExit(f"yolo-attn bench: {key} must be {what}, got {value!r}") from None
    return opts


def cmd_bench(args: list[str]) -> None:
    """Train the stock model and each variant with the same seeds; write bench.md, bench.json and bench.png."""
    import shlex

    from .bench import BenchSettingsError, run_bench

    opts = _bench_options(_kv(args))
    try:
        run_bench(**opts, command=shlex.join(["yolo-attn", "bench", *args]))
    except BenchSettingsError as e:
        raise SystemExit(f"yolo-attn {e}") from None


def cmd_make_config(args: list[str]) -> None:
    """Write a model YAML: a base model plus an attention block at the named places; print what was inserted."""
    from .configgen import make_config, parse_args, placement_rows

    kw = _kv(args)
    missing = [k for k in ("base", "block", "out") if k not in kw]
    unknown = sorted(set(kw) - {"base", "block", "at", "args", "out"})
    if missing or unknown:
        problem = f"missing {', '.join(missing)}" if missing else f"unknown option(s) {', '.join(unknown)}"
        raise SystemExit(
            f"yolo-attn make-config: {problem}; usage: base=yolov8-seg.yaml block=NAM at=backbone|neck|all|2,4 "
            "[args=[...]] out=FILE.yaml"
        )
    at = kw.get("at", "backbone")
    try:
        block_args = parse_args(kw["args"]) if "args" in kw else None
        make_config(kw["base"], kw["block"], at=at, args=block_args, out=kw["out"])
        rows = placement_rows(kw["base"], at)
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise SystemExit(f"yolo-attn make-config: {e.args[0] if isinstance(e, KeyError) else e}") from None
    name = next(n for n in BLOCKS.names() if n.lower() == kw["block"].lower())
    print(f"{kw['out']}: {kw['base']} plus {name} after its rows {', '.join(map(str, rows))}")


def cmd_prune(args: list[str]) -> None:
    """Prune channels by BatchNorm |gamma|; print params and GFLOPs before -> after and the kept channels per layer."""
    from .slim import SlimError, prune

    kw = _kv(args)
    usage = "usage: model=best.pt|model.yaml ratio=0.3 out=pruned.pt [round=8] [min_channels=8] [imgsz=640]"
    missing = [k for k in ("model", "ratio", "out") if k not in kw]
    unknown = sorted(set(kw) - {"model", "ratio", "out", "round", "min_channels", "imgsz"})
    if missing or unknown:
        problem = f"missing {', '.join(missing)}" if missing else f"unknown option(s) {', '.join(unknown)}"
        raise SystemExit(f"yolo-attn prune: {problem}; {usage}")
    try:
        ratio = float(kw["ratio"])
        ints = {k: int(kw[k]) for k in ("round", "min_channels", "imgsz") if k in kw}
    except ValueError as e:
        raise SystemExit(f"yolo-attn prune: ratio must be a number, round/min_channels/imgsz integers ({e})") from None
    register()
    try:
        report = prune(kw["model"], ratio=ratio, out=kw["out"], **ints)
    except (FileNotFoundError, SlimError) as e:
        raise SystemExit(f"yolo-attn prune: {e}") from None
    print(report.format())


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "list": cmd_list,
    "data": cmd_data,
    "saliency": cmd_saliency,
    "bench": cmd_bench,
    "visualize": cmd_visualize,
    "make-config": cmd_make_config,
    "prune": cmd_prune,
}


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
