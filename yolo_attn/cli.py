"""``yolo-attn``: Ultralytics' ``yolo`` command with the attention blocks registered, plus the kit's own commands.

    yolo-attn train model=yolov8n-nam.yaml data=digits.yaml epochs=15 imgsz=128  # any `yolo` mode/syntax
    yolo-attn list                                                                # blocks and ready-made configs
    yolo-attn data [root=DIR] [dataset=digits] [n_train=N] [n_val=N] [imgsz=N] [seed=0]  # write a built-in dataset
    yolo-attn saliency model=best.pt [threshold=0.01]                             # channel saliency report
    yolo-attn bench [models=[a.yaml,b.yaml]] [seeds=0,1,2] [budget=MIN] [epochs=N] [out=bench]  # `bench help`
    yolo-attn visualize model=best.pt source=img.jpg out=DIR [imgsz=640] [alpha=0.5] [tile=256]  # attention maps
    yolo-attn make-config base=yolov8-seg.yaml block=NAME at=backbone|neck|all|2,4 [args=[...]] out=FILE  # config
    yolo-attn prune model=best.pt ratio=0.3 out=pruned.pt [round=8] [min_channels=8] [imgsz=640]  # slim channels

Every kit command takes Ultralytics-style ``key=value`` options (lists as ``a,b`` or ``[a,b]``), parsed in one place
(``parse_options``); ``yolo-attn <command> help`` lists them. Bad input ends the command with one line on stderr that
names the option and the fix, and a non-zero exit status.

Kit options accepted with train (removed before Ultralytics' argument check):
    nam_penalty=1e-4         NAM's L1 sparsity penalty p (overrides the model YAML's nam_penalty; 0 turns it off)
    nam_penalty_scope=nam    'nam': NAM scale factors; 'all': every BatchNorm2d weight too (network slimming)
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from . import __version__
from .integration import DATA_NAME, list_configs, register
from .registry import BLOCKS, did_you_mean
from .training.penalty import ENV_PENALTY, ENV_SCOPE, check_penalty, check_scope

__all__ = [
    "COMMANDS",
    "CLIError",
    "KIT_OPTIONS",
    "Option",
    "choice",
    "existing_path",
    "flag",
    "integer",
    "items",
    "main",
    "model_file",
    "number",
    "parse_options",
    "text",
]

_HELP = (["help"], ["-h"], ["--help"])
_BUILTIN_ERRORS = ("invalid literal", "could not convert")  # int()/float() messages, which do not say what is allowed


# ------------------------------------------------------------------------------------------------- option parsing
class CLIError(ValueError):
    """Bad command-line input. ``main`` prints ``yolo-attn <command>: <message>`` as one line and exits non-zero."""


@dataclass(frozen=True)
class Option:
    """One ``key=value`` option of a kit command.

    ``parse_options`` also takes any object with these attributes (``name`` and ``type`` at least), such as the
    bench's own option records, which add ``check`` (value -> checked value, raising ``ValueError``) and ``cli``
    (False: not a command-line option).

    Attributes:
        name (str): The key.
        type (Callable[[str], Any]): Command-line text -> value; raises ``ValueError`` (its message, if any, says
            why). The converters below (``integer``, ``number``, ...) also carry ``what``.
        default (Any): Value when the option is not given.
        required (bool): The command needs it.
        what (str): What the text must be, for error messages (default: the converter's ``what``).
        help (str): One line for ``yolo-attn <command> help``.
    """

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    required: bool = False
    what: str = ""
    help: str = ""


def _converter(what: str, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """Attach ``what`` (the allowed text, for messages) to a converter."""
    convert.what = what  # type: ignore[attr-defined]
    return convert


def _bounds(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    """Describe a range in words: ``>= 1``, ``<= 5``, or ``in (0, 1)`` / ``in [1, 10]`` when both ends are set."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}" if high is not None else ""


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """Return a converter to an integer in ``[low, high]``.

    Args:
        low (int, optional): Smallest allowed value.
        high (int, optional): Largest allowed value.

    Returns:
        (Callable[[str], int]): The converter.
    """
    what = f"an integer {_bounds(low, high)}".rstrip()

    def convert(s: str) -> int:
        value = int(s)
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError()
        return value

    return _converter(what, convert)


def number(
    low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """Return a converter to a finite number in the given range.

    Args:
        low (float, optional): Lower bound.
        high (float, optional): Upper bound.
        low_open (bool): Exclude ``low``.
        high_open (bool): Exclude ``high``.

    Returns:
        (Callable[[str], float]): The converter.
    """
    what = f"a number {_bounds(low, high, low_open, high_open)}".rstrip()

    def convert(s: str) -> float:
        value = float(s)
        ok = math.isfinite(value)
        ok = ok and (low is None or (value > low if low_open else value >= low))
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if not ok:
            raise ValueError()
        return value

    return _converter(what, convert)


def flag() -> Callable[[str], bool]:
    """Return a converter for ``true``/``false`` (any case, as Ultralytics writes ``True``/``False``)."""

    def convert(s: str) -> bool:
        if s.lower() not in {"true", "false"}:
            raise ValueError()
        return s.lower() == "true"

    return _converter("true or false", convert)


def text(nonempty: bool = True) -> Callable[[str], str]:
    """Return a converter for plain text (non-empty unless ``nonempty`` is False)."""

    def convert(s: str) -> str:
        if nonempty and not s:
            raise ValueError()
        return s

    return _converter("non-empty text" if nonempty else "text", convert)


def choice(values: Iterable[str]) -> Callable[[str], str]:
    """Return a converter that accepts one of ``values`` (with a did-you-mean for others)."""
    values = list(values)
    what = "one of " + ", ".join(values)

    def convert(s: str) -> str:
        if s not in values:
            raise ValueError(did_you_mean(s, values).strip())
        return s

    return _converter(what, convert)


def items(convert: Callable[[str], Any] = str) -> Callable[[str], list]:
    """Return a converter for a list in either of Ultralytics' list syntaxes: ``a,b`` or ``[a,b]`` (quotes dropped)."""
    what = f"a list written a,b or [a,b], each {getattr(convert, 'what', 'a value')}"

    def split(s: str) -> list:
        s = s.strip()
        if len(s) >= 2 and (s[0], s[-1]) in {("[", "]"), ("(", ")")}:
            s = s[1:-1]
        parts = [p.strip().strip("'\"").strip() for p in s.split(",")]
        if not all(parts):
            raise ValueError("an item is empty")
        return [convert(p) for p in parts]

    return _converter(what, split)


def existing_path(kind: str = "file or directory") -> Callable[[str], Path]:
    """Return a converter for a path that exists (``kind``: ``"file"``, ``"directory"`` or ``"file or directory"``)."""

    def convert(s: str) -> Path:
        path = Path(s).expanduser()
        ok = path.is_file() if kind == "file" else path.is_dir() if kind == "directory" else path.exists()
        if not ok:
            raise ValueError("it does not exist" if not path.exists() else f"it is not a {kind}")
        return path

    return _converter(f"an existing {kind}", convert)


def model_file(suffixes: Sequence[str] = (".pt",), names: bool = False) -> Callable[[str], str]:
    """Return a converter for a model: an existing file with one of ``suffixes``.

    Args:
        suffixes (Sequence[str]): Accepted suffixes, e.g. ``(".pt", ".yaml")``.
        names (bool): Model YAMLs may also be bare names that Ultralytics or the kit resolve
            (``yolov8n-nam.yaml``), so they need not exist as files.

    Returns:
        (Callable[[str], str]): The converter.
    """
    what = f"a {', '.join(suffixes[:-1])} or {suffixes[-1]} file" if len(suffixes) > 1 else f"a {suffixes[0]} file"

    def convert(s: str) -> str:
        suffix = Path(s).suffix.lower()
        if suffix not in suffixes:
            raise ValueError()
        yaml_name = names and suffix in {".yaml", ".yml"} and Path(s).name == s
        if not yaml_name and not Path(s).expanduser().is_file():
            raise ValueError("it does not exist")
        return s

    return _converter(what, convert)


def _merge_fragments(argv: Sequence[str]) -> list[str]:
    """Join arguments the shell split inside brackets: ``models=[a.yaml,`` ``b.yaml]`` -> ``models=[a.yaml,b.yaml]``."""
    out: list[str] = []
    depth = 0
    for arg in argv:
        if depth > 0 and out and "=" not in arg:  # a fragment; a new key=value ends an unclosed list
            out[-1] += arg
        else:
            out.append(arg)
            depth = 0
        depth = max(depth + arg.count("[") - arg.count("]"), 0)
    return out


def _what(opt: Any) -> str:
    """Return what an option's text must be, from the option or its converter."""
    return getattr(opt, "what", "") or getattr(opt.type, "what", "") or "a valid value"


def _convert(command: str, opt: Any, raw: str) -> Any:
    """Convert and check one option's text; a ``CLIError`` names the option, what it must be and what was given."""
    try:
        value = opt.type(raw.strip())
    except (TypeError, ValueError) as e:
        detail = str(e).removeprefix(f"{opt.name}: ")
        why = "" if not detail or detail.startswith(_BUILTIN_ERRORS) else f": {detail}"
        raise CLIError(f"{opt.name} must be {_what(opt)}, got {raw!r}{why}") from None
    check = getattr(opt, "check", None)
    if check is not None:
        try:
            value = check(value)
        except ValueError as e:  # the check's message names the option (e.g. "bench: seeds must be distinct ...")
            raise CLIError(str(e).removeprefix(f"{command}: ")) from None
    return value


def parse_options(
    command: str, options: Sequence[Any], argv: Sequence[str], usage: str = "", defaults: bool = True
) -> dict[str, Any]:
    """Parse a kit command's ``key=value`` arguments: the one place every kit command's options are read.

    Args:
        command (str): The command, for messages.
        options (Sequence[Option]): The command's options (``Option`` or any record with ``name`` and ``type``;
            ``required``, ``default``, ``what``, ``check`` and ``cli`` are used when present).
        argv (Sequence[str]): The arguments after the command name.
        usage (str): A usage example for messages, e.g. ``"model=best.pt [threshold=0.01]"``.
        defaults (bool): Fill in the ``default`` of every option not given (else return only those given).

    Returns:
        (dict[str, Any]): Option name -> converted (and checked) value.

    Raises:
        CLIError: Not ``key=value``, an unknown key (with a did-you-mean), a key given twice, a missing required
            option, or a value that does not convert or check; the message names the option and the fix.
    """
    spec = {o.name: o for o in options if getattr(o, "cli", True)}
    hint = f"; usage: yolo-attn {command} {usage}" if usage else f"; see yolo-attn {command} help"
    given: dict[str, str] = {}
    for arg in _merge_fragments(argv):
        key, sep, raw = arg.partition("=")
        if not sep or not key:
            raise CLIError(f"expected key=value, got '{arg}'{hint}")
        if key not in spec:
            known = f"options: {', '.join(spec)}" if spec else "takes no options"
            raise CLIError(f"unknown option '{key}'.{did_you_mean(key, list(spec))} {command} {known}")
        if key in given:
            raise CLIError(f"{key} is given twice ({key}={given[key]!r} and {key}={raw!r}); give it once")
        given[key] = raw
    missing = [name for name, o in spec.items() if getattr(o, "required", False) and name not in given]
    if missing:
        raise CLIError(f"missing {', '.join(missing)} ({' '.join(f'{k}=...' for k in missing)} required){hint}")
    out = {key: _convert(command, spec[key], raw) for key, raw in given.items()}
    if defaults:
        out.update({n: getattr(o, "default", None) for n, o in spec.items() if n not in out})
    return out


def _help(command: str, options: Sequence[Any], summary: str) -> str:
    """Return a command's help: the summary and one line per option."""
    lines = [f"yolo-attn {command}: {summary}", ""]
    for o in options:
        if getattr(o, "cli", True):
            default = getattr(o, "default", None)
            need = f" (default: {default})" if default is not None else ""
            need = " (required)" if getattr(o, "required", False) else need
            lines.append(f"  {o.name:<14} {getattr(o, 'help', '') or _what(o)}{need}")
    return "\n".join(lines)


def _parse(command: str, options: Sequence[Any], args: list[str], usage: str, summary: str) -> dict[str, Any] | None:
    """Parse a command's options; for ``help`` print the command's help instead and return None."""
    if args in _HELP:
        print(_help(command, options, summary) + (f"\n\nusage: yolo-attn {command} {usage}" if usage else ""))
        return None
    return parse_options(command, options, args, usage)


def _one_line(e: BaseException) -> str:
    """Return an exception as one line: its type and the first line of its message."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _load_model(path: str, option: str = "model") -> Any:
    """Load a checkpoint or model YAML with Ultralytics' ``YOLO``; a file it cannot read is a ``CLIError``."""
    register()  # model YAMLs need the blocks (a no-op when already registered)
    from ultralytics import YOLO

    try:
        return YOLO(path)
    except Exception as e:  # any loader failure (not a checkpoint, unknown YAML name, ...) is bad input here
        raise CLIError(f"{option}: cannot load '{path}' as an Ultralytics model ({_one_line(e)})") from None


# ---------------------------------------------------------------------------------------------------- list, data
def cmd_list(args: list[str]) -> None:
    """Print the registered blocks and the ready-made configs."""
    if _parse("list", (), args, "", "the registered blocks, ready-made configs and built-in dataset") is None:
        return
    print(f"yolo-attn {__version__}\n\nRegistered attention blocks (YAML row: [from, n, NAME, [args]]):")
    items = BLOCKS.items()
    wide = max((len(n) for n, _ in items), default=0)  # column widths from the longest entry, so long names align
    paths = {n: f"{c.__module__}.{c.__qualname__}" for n, c in items}
    for name, cls in items:
        doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip().splitlines()[0]
        also = f" (also: {', '.join(BLOCKS.aliases(name))})" if BLOCKS.aliases(name) else ""
        print(f"  {name:<{wide}}  {paths[name]:<{max(map(len, paths.values()))}}  {doc}{also}")
    print("\nReady-made configs (add a scale letter n/s/m/l/x: yolov8n-nam.yaml):")
    configs = list_configs()
    for path in configs:
        print(f"  {path.name:<{max((len(p.name) for p in configs), default=0)}}  {path}")
    from .data import DATASETS

    names = ", ".join(f"data={n}.yaml" for n in DATASETS)
    print(f"\nBuilt-in datasets: {names} (generated offline on first use; {DATA_NAME} is the default)")


def _data_options() -> tuple[Option, ...]:
    """Return ``yolo-attn data``'s options (the generator's arguments; None keeps the built-in dataset's value)."""
    from .data import DATASETS
    from .data.digits import N_CLASSES, TEXTURES

    return (
        Option("root", text(), help="dataset directory (default: the kit's data directory)"),
        Option("dataset", choice(DATASETS), "digits", help="built-in dataset whose values fill the others"),
        Option("n_train", integer(1), help="train images"),
        Option("n_val", integer(1), help="val images"),
        Option("imgsz", integer(32), help="square image side in pixels"),
        Option("seed", integer(0), help="seed; equal options give byte-identical files"),
        Option("classes", integer(1, N_CLASSES), help="digit classes 0..classes-1"),
        Option("scale", items(number(0, 1, low_open=True)), help="digit side range lo,hi as fractions of the image"),
        Option("max_digits", integer(1), help="most digits per image"),
        Option("texture", choice(TEXTURES), help="background style"),
    )


def cmd_data(args: list[str]) -> None:
    """Generate a built-in dataset and print its data YAML path."""
    kw = _parse("data", _data_options(), args, "[root=DIR] [dataset=digits] [n_train=N] ...", "write a dataset")
    if kw is None:
        return
    from .data import digits_yaml

    try:
        print(digits_yaml(kw.pop("root"), **kw))
    except (TypeError, ValueError) as e:  # the generator's own checks name the argument
        raise CLIError(str(e).removeprefix("make_digits_dataset: ").removeprefix("digits_yaml: ")) from None
    except OSError as e:
        raise CLIError(f"root: cannot write the dataset there ({_one_line(e)}); give a writable root=DIR") from None


# ------------------------------------------------------------------------------------------- saliency, visualize
def cmd_saliency(args: list[str]) -> None:
    """Print the channel saliency (scale factors) of a checkpoint's attention blocks."""
    from .training import SPARSITY_THRESHOLD, format_saliency, nam_saliency

    options = (
        Option("model", model_file((".pt",)), required=True, help="checkpoint, e.g. runs/detect/train/weights/best.pt"),
        Option("threshold", number(0), SPARSITY_THRESHOLD, help="|scale factor| below this counts as low saliency"),
    )
    kw = _parse("saliency", options, args, "model=best.pt [threshold=0.01]", "channel saliency report")
    if kw is not None:
        model = _load_model(kw["model"])
        print(format_saliency(nam_saliency(model, kw["threshold"]), kw["threshold"]))


def cmd_visualize(args: list[str]) -> None:
    """Write each attention layer's gate map over an image (one PNG per layer and a contact sheet); print the paths."""
    from .visualize import visualize

    options = (
        Option("model", model_file((".pt", ".yaml", ".yml"), names=True), required=True,
               help="checkpoint or model YAML"),
        Option("source", existing_path(), required=True, help="an image, or a directory of images"),
        Option("out", text(), required=True, help="output directory"),
        Option("imgsz", integer(32), 640, help="inference size"),
        Option("alpha", number(0, 1), 0.5, help="weight of the colour map in the blend"),
        Option("tile", integer(16), 256, help="longest side of each contact-sheet tile in pixels"),
    )
    kw = _parse("visualize", options, args, "model=best.pt source=image.jpg out=DIR", "attention-map overlays")
    if kw is None:
        return
    model = _load_model(kw.pop("model"))
    try:
        paths = visualize(model, kw.pop("source"), kw.pop("out"), **kw)
    except (FileNotFoundError, TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    print("\n".join(str(p) for p in paths))


# ------------------------------------------------------------------------------------------------------- bench
def cmd_bench(args: list[str]) -> None:
    """Train the stock model and each variant with the same seeds; write bench.md, bench.json and bench.png."""
    import shlex

    from .bench import OPTIONS, BenchSettingsError, run_bench, usage

    if args in _HELP:
        return print(usage())
    kw = parse_options("bench", OPTIONS, args, defaults=False)  # the bench's own records: type, check, cli
    try:
        run_bench(**kw, command=shlex.join(["yolo-attn", "bench", *args]))
    except BenchSettingsError as e:
        raise CLIError(str(e).removeprefix("bench: ")) from None


# ------------------------------------------------------------------------------------------ make-config, prune
def cmd_make_config(args: list[str]) -> None:
    """Write a model YAML: a base model plus an attention block at the named places; print what was inserted."""
    from .configgen import make_config, parse_args, placement_rows
    from .configgen.blockargs import block_name

    options = (
        Option("base", text(), required=True, help="stock or kit model YAML name, or a file"),
        Option("block", text(), required=True, help="registered block name or alias (yolo-attn list)"),
        Option("at", text(), "backbone", help="backbone, neck, all, row indices, or a mix: backbone,12"),
        Option("args", parse_args, what="a list of the block's arguments, e.g. [16] or 16,8",
               help="the block's YAML arguments (default: its generated-config default)"),
        Option("out", text(), required=True, help="the YAML file to write"),
    )
    usage = "base=yolov8-seg.yaml block=NAME at=backbone|neck|all|2,4 [args=[...]] out=FILE.yaml (NAME: yolo-attn list)"
    kw = _parse("make-config", options, args, usage, "generate a model config with attention rows")
    if kw is None:
        return
    try:
        make_config(kw["base"], kw["block"], at=kw["at"], args=kw["args"], out=kw["out"])
        rows = placement_rows(kw["base"], kw["at"])
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise CLIError(e.args[0] if isinstance(e, KeyError) else str(e)) from None
    print(f"{kw['out']}: {kw['base']} plus {block_name(kw['block'])} after its rows {', '.join(map(str, rows))}")


def cmd_prune(args: list[str]) -> None:
    """Prune channels by BatchNorm |gamma|; print params and GFLOPs before -> after and the kept channels per layer."""
    from .slim import SlimError, prune

    options = (
        Option("model", model_file((".pt", ".yaml", ".yml"), names=True), required=True,
               help="checkpoint (or model YAML) to prune"),
        Option("ratio", number(0, 1, low_open=True, high_open=True), required=True,
               help="fraction of prunable channels to remove"),
        Option("out", text(), required=True, help="pruned checkpoint to write"),
        Option("round", integer(1), 8, help="kept channel counts are multiples of this"),
        Option("min_channels", integer(1), 8, help="every layer keeps at least this many channels"),
        Option("imgsz", integer(32), 640, help="input size for the GFLOPs count"),
    )
    usage = "model=best.pt|model.yaml ratio=0.3 out=pruned.pt [round=8] [min_channels=8] [imgsz=640]"
    kw = _parse("prune", options, args, usage, "structured channel pruning")
    if kw is None:
        return
    register()
    try:
        report = prune(kw.pop("model"), **kw)
    except (FileNotFoundError, SlimError) as e:
        raise CLIError(str(e)) from None
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
"""The kit's own commands: ``name -> fn(args)``. A command reads its options with ``parse_options`` and raises
``CLIError`` for bad input; ``main`` turns that into one line on stderr and a non-zero exit status."""


# ------------------------------------------------------------------------------------- Ultralytics passthrough
def _set_env(name: str, check: Callable[[str], object]) -> Callable[[str], None]:
    """Return a handler that validates a kit option and hands it to the trainer (and DDP workers) via ``name``."""

    def handler(value: str) -> None:
        try:
            os.environ[name] = str(check(value))
        except ValueError as e:
            raise CLIError(str(e)) from None

    return handler


# key=value options the kit consumes before Ultralytics sees the arguments: {key: fn(value)}
KIT_OPTIONS: dict[str, Callable[[str], None]] = {
    "nam_penalty": _set_env(ENV_PENALTY, check_penalty),
    "nam_penalty_scope": _set_env(ENV_SCOPE, check_scope),
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

    Raises:
        SystemExit: Bad input to a kit command or a kit option: one line ``yolo-attn <command>: <problem and fix>``,
            which Python prints on stderr, exit status 1.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and args[0] in COMMANDS else ""
    try:
        if command:
            return COMMANDS[command](args[1:])
        register()
        args = _strip_kit_options(args)
    except CLIError as e:
        raise SystemExit(f"yolo-attn{' ' + command if command else ''}: {e}".replace("\n", " ")) from None
    from ultralytics import cfg

    if not args or args[0] in {"help", "-h", "--help"}:
        print(__doc__)
    with mock.patch.object(cfg, "ARGV", ["yolo-attn", *args]):  # entrypoint() reads the module-level ARGV
        cfg.entrypoint()


if __name__ == "__main__":
    main()
