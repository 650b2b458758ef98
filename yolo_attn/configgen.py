"""Config generator: a model YAML plus attention rows, with every ``from`` index rewritten for the inserted rows.

    make_config("yolov8-seg.yaml", "NAM", at="backbone", out="yolov8-seg-nam.yaml")
    yolo-attn make-config base=yolov8-seg.yaml block=NAM at=backbone out=yolov8-seg-nam.yaml

A row inserted after layer ``k`` is ``[-1, 1, BLOCK, args]``: it refines ``k``'s output, so every later row that read
``k`` (through ``-1``, a negative offset, an absolute index, a Concat list or the head's input list) reads the
attention row instead; every other reference moves with the shifted rows. The generated model is the base model plus
the attention rows, nothing else. Placements (``at``), all counted in the base YAML's rows:

- ``backbone``: after the last stage block of each backbone stride level. A stage block is any backbone row that is
  not a plain convolution, pooling, resampling or Concat row (Conv, GhostConv, DWConv, ADown, SCDown, nn.Upsample,
  ...) and not a backbone tail (SPP, SPPF, SPPELAN, PSA, C2PSA, C2fPSA, AIFI). YOLOv8: after the C2f rows 2, 4, 6, 8
  (stages P2-P5; the stem Conv and SPPF get none); YOLO11 and YOLO11-cls: after the C3k2 rows 2, 4, 6, 8 (SPPF and
  C2PSA get none); ResNet classifiers: after ResNetLayer rows 1-4. Strides are measured by building the backbone
  once at its first scale (a 256 px forward pass), so any module's resolution change is seen.
- ``neck``: after every layer the output row (Detect, Segment, Pose, OBB, Classify, ...) reads.
- ``all``: both, without duplicates.
- indices, e.g. ``3,6`` or ``[3, 6]``: after those rows of the base; names and indices combine (``backbone,12``).

The output keeps the base's comments and row text (upstream style), renumbers the ``# index`` row comments, drops
the base's per-scale summaries (their numbers no longer hold), and opens with the command that regenerates it.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import json
import math
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .registry import BLOCKS

__all__ = ["PLACEMENTS", "make_config", "parse_args", "placement_rows", "render_config", "resolve_base"]

PLACEMENTS = ("backbone", "neck", "all")
PLACEMENT_TEXT = {
    "backbone": "the last block of each backbone stage",
    "neck": "each layer the output row reads",
    "all": "the last block of each backbone stage and each layer the output row reads",
}
GENERATED_MARK = "# yolo-attn - generated config"
NAM_PENALTY_LINE = (
    "nam_penalty: 1.0e-4 # L1 sparsity penalty p on the NAM scale factors (paper default; 0 turns it off)"
)
STRIDE_PROBE_IMGSZ = 256  # Ultralytics' own stride probe size: P6/64 still gives a 4x4 map

# Backbone rows that never end a stage: single convolutions, pooling, resampling, routing, and the tail modules that
# pool global context for the neck.
NOT_STAGE_BLOCKS = frozenset(
    {
        "Conv", "Conv2", "GhostConv", "DWConv", "LightConv", "RepConv", "ConvTranspose", "DWConvTranspose2d",
        "Focus", "ADown", "AConv", "SCDown", "HGStem", "Concat", "Index", "CBLinear", "CBFuse",
        "nn.Conv2d", "nn.ConvTranspose2d", "nn.Upsample", "nn.MaxPool2d", "nn.AvgPool2d", "nn.Identity",
        "nn.BatchNorm2d",
        "SPP", "SPPF", "SPPELAN", "PSA", "C2PSA", "C2fPSA", "AIFI",
    }
)  # fmt: skip

_SCALE_IN_NAME = re.compile(r"(\d+)([nslmx])(.+)?$")  # Ultralytics' rule: yolov8n-seg.yaml -> yolov8-seg.yaml
_SCALABLE_NAME = re.compile(r"^(yolo(?:e-)?v?\d+)(.*)$")  # where the scale letter goes: yolov8-seg -> yolov8n-seg
_BARE_STRING = re.compile(r"[A-Za-z_][\w.]*")
_TOP_KEY = re.compile(r"^([A-Za-z_]\w*)\s*:")
_LEADING_INDEX = re.compile(r"^\d+(?=[\s\-(]|$)")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: many small reads per config


def _yaml(text: str) -> object:
    """Parse YAML text safely (the same result with or without libyaml)."""
    return yaml.load(text, Loader=_LOADER)


@dataclass
class _SourceRow:
    """A row as written in the base file: its fields' text (from, repeats, module, args) and trailing comment."""

    fields: list[str]
    comment: str
    blank_before: bool


@dataclass
class _Base:
    """A loaded base YAML: its dict, text, the name to record, and the path."""

    cfg: dict
    text: str
    name: str
    path: Path


# ---------------------------------------------------------------------------------------------------------- base
def _stock_root() -> Path:
    """Return Ultralytics' ``cfg/models`` directory without importing Ultralytics."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.origin:
        raise ModuleNotFoundError("Ultralytics is not installed: pip install 'ultralytics>=8.4.0,<8.5'")
    return Path(spec.origin).parent / "cfg" / "models"


def _kit_cfg_dir() -> Path | None:
    """Return the kit's ready-made config directory, or None when it is missing."""
    from .integration.files import cfg_dir

    try:
        return cfg_dir()
    except FileNotFoundError:
        return None


def _known_names() -> list[str]:
    """Return every stock and kit model YAML name, for did-you-mean hints."""
    kit = _kit_cfg_dir()
    paths = list(_stock_root().rglob("*.yaml")) + (list(kit.glob("*.yaml")) if kit else [])
    return sorted({p.name for p in paths})


def resolve_base(base: str | os.PathLike) -> Path:
    """Return the model YAML a base name or path refers to.

    Args:
        base (str | os.PathLike): An existing file, or a name of a stock Ultralytics model YAML (``yolov8-seg.yaml``,
            ``yolo11.yaml``) or of a kit config, with or without a scale letter (``yolov8n-seg.yaml``).

    Returns:
        (Path): The YAML file.

    Raises:
        FileNotFoundError: Nothing matches; the message lists the closest names.
    """
    path = Path(base)
    if path.is_file():
        return path
    name = path.name
    if str(base) == name:  # a bare name: the kit's configs, then Ultralytics' cfg/models tree
        unscaled = _SCALE_IN_NAME.sub(r"\1\3", name)
        kit = _kit_cfg_dir()
        for candidate in dict.fromkeys((name, unscaled)):
            if kit is not None and (kit / candidate).is_file():
                return kit / candidate
            found = sorted(_stock_root().rglob(candidate))
            if found:
                return found[0]
    close = difflib.get_close_matches(name, _known_names(), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise FileNotFoundError(
        f"base '{base}' not found: it is not a file, a stock Ultralytics model YAML (ultralytics/cfg/models) or a "
        f"yolo-attn config.{hint} Examples: base=yolov8.yaml, base=yolo11-seg.yaml, base=path/to/model.yaml."
    )


def _load_base(base: str | os.PathLike) -> _Base:
    """Resolve and load ``base``, checking it is a model YAML with backbone and head lists."""
    path = resolve_base(base)
    text = path.read_text(encoding="utf-8")
    cfg = _yaml(text)
    if not isinstance(cfg, dict) or not all(isinstance(cfg.get(k), list) and cfg[k] for k in ("backbone", "head")):
        raise ValueError(f"base '{base}' ({path}) is not a model YAML: it needs non-empty 'backbone' and 'head' lists")
    for i, row in enumerate(cfg["backbone"] + cfg["head"]):
        if not (isinstance(row, list) and len(row) == 4 and isinstance(row[2], str)):
            raise ValueError(f"base '{base}' row {i} must be [from, repeats, module, args], got {row!r}")
        try:
            _inputs(i, row[0])
        except ValueError as e:
            raise ValueError(f"base '{base}' {e}") from None
    return _Base(cfg, text, str(base), path)


# ---------------------------------------------------------------------------------------------------- references
def _absolute(i: int, f: int) -> int:
    """Return the absolute layer index row ``i`` reads through ``f`` (``-1`` of row 0 is the image, kept as -1)."""
    return f if f >= 0 or i == 0 else i + f


def _inputs(i: int, f: int | list) -> list[int]:
    """Return the absolute layer indices row ``i`` reads, checking each is an earlier row."""
    refs = f if isinstance(f, list) else [f]
    out = []
    for x in refs:
        if isinstance(x, bool) or not isinstance(x, int):
            raise ValueError(f"row {i}: 'from' must be an integer or a list of integers, got {f!r}")
        j = _absolute(i, x)
        if not (j < i and (j >= 0 or i == 0)):
            raise ValueError(f"row {i}: 'from' {f!r} does not refer to an earlier row")
        out.append(j)
    return out


def _insert(rows: list[list], after: list[int], new_row) -> tuple[list[list], dict[int, int], dict[int, int]]:
    """Insert ``new_row(k)`` after each row ``k`` in ``after`` and rewrite every ``from`` reference.

    A reference to ``k`` becomes a reference to the attention row after ``k``; others follow the shift. Negative
    references stay relative (``-1`` stays ``-1``), absolute ones stay absolute.

    Returns:
        (tuple): The new rows, {old index: new index}, {k: index of the attention row after k}.
    """
    targets = sorted(set(after))
    new_index, shift = {}, 0
    for i in range(len(rows)):
        new_index[i] = i + shift
        shift += i in targets
    attention = {k: new_index[k] + 1 for k in targets}
    out = []
    for i, (f, n, m, args) in enumerate(rows):  # references were checked when the base was loaded
        ni = new_index[i]

        def remap(x: int, i: int = i, ni: int = ni) -> int:
            j = _absolute(i, x)
            if j < 0:
                return x  # the image input of row 0
            t = attention.get(j, new_index[j])
            return t if x >= 0 else t - ni

        out.append([[remap(x) for x in f] if isinstance(f, list) else remap(f), n, m, args])
        if i in attention:
            out.append(new_row(i))
    return out, new_index, attention


# ---------------------------------------------------------------------------------------------------- placements
def _parse_at(at: str | int | Sequence[str | int]) -> list[str | int]:
    """Split ``at`` into placement names and row indices (``"backbone,12"``, ``"[3, 6]"``, ``[3, 6]``, ``3``)."""
    items = at.strip().strip("[]").split(",") if isinstance(at, str) else [at] if isinstance(at, int) else list(at)
    out: list[str | int] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"at: expected a placement name or a row index, got {item!r}")
        token = item.strip() if isinstance(item, str) else item
        if isinstance(token, int) or (isinstance(token, str) and re.fullmatch(r"-?\d+", token)):
            out.append(int(token))
        elif isinstance(token, str) and token.lower() in PLACEMENTS:
            out.append(token.lower())
        else:
            close = difflib.get_close_matches(str(token).lower(), PLACEMENTS, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(
                f"at: unknown placement {token!r}.{hint} Use {', '.join(PLACEMENTS)} or row indices of the base, "
                "e.g. at=backbone or at=2,4"
            )
    if not out:
        raise ValueError("at: empty placement; use backbone, neck, all or row indices, e.g. at=2,4")
    return out


@functools.lru_cache(maxsize=64)
def _probe_strides(key: str) -> tuple[int | None, ...]:
    """Measure each backbone row's stride by building the backbone (plus a Classify row) and running 256 px zeros.

    Args:
        key (str): JSON of ``[backbone, scales, channels]`` (hashable, so results are cached per backbone).

    Returns:
        (tuple): Per backbone row, the input size divided by its output size, or None for non-map outputs.
    """
    import torch
    from ultralytics.nn.tasks import ClassificationModel

    from .integration import register

    register()  # a base may already hold kit blocks
    backbone, scales, ch = json.loads(key)
    cfg = {"nc": 10, "backbone": backbone, "head": [[-1, 1, "Classify", ["nc"]]], "channels": ch}
    if scales:
        cfg.update(scales=scales, scale=next(iter(scales)))
    model = ClassificationModel(cfg, ch=ch, verbose=False).eval()
    sizes: dict[int, int | None] = {}
    hooks = [
        layer.register_forward_hook(
            lambda m, x, y, i=i: sizes.__setitem__(i, y.shape[-2] if torch.is_tensor(y) and y.dim() == 4 else None)
        )
        for i, layer in enumerate(model.model[: len(backbone)])
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, ch, STRIDE_PROBE_IMGSZ, STRIDE_PROBE_IMGSZ))
    finally:
        for h in hooks:
            h.remove()
    sizes_in_order = [sizes.get(i) for i in range(len(backbone))]
    return tuple(STRIDE_PROBE_IMGSZ // s if s and STRIDE_PROBE_IMGSZ % s == 0 else None for s in sizes_in_order)


def _backbone_strides(base: _Base) -> list[int | None]:
    """Return each backbone row's stride (see ``_probe_strides``); a clear error when the backbone does not build."""
    cfg = base.cfg
    key = json.dumps([cfg["backbone"], cfg.get("scales"), cfg.get("channels", 3)], default=str)
    try:
        return list(_probe_strides(key))
    except Exception as e:  # any build or forward error of the user's backbone
        raise ValueError(
            f"at=backbone needs the stride of each backbone row of {base.name}, measured by building its backbone; "
            f"that failed ({type(e).__name__}: {e}). Name the rows instead, e.g. at=2,4."
        ) from e


def _stage_ends(base: _Base) -> dict[int, str]:
    """Return {backbone row: 'stage Pn end'} for the last stage block of each backbone stride level."""
    last: dict[int, int] = {}
    for i, (row, s) in enumerate(zip(base.cfg["backbone"], _backbone_strides(base))):
        if s is not None and row[2] not in NOT_STAGE_BLOCKS and row[2] not in BLOCKS:
            last[s] = i
    return {i: f"stage P{round(math.log2(s))} end" for s, i in last.items()}


def placement_rows(base: str | os.PathLike, at: str | int | Sequence[str | int] = "backbone") -> dict[int, str]:
    """Return the base rows a placement puts an attention row after, each with the role that picked it.

    Args:
        base (str | os.PathLike): Model YAML name or path (see ``resolve_base``).
        at (str | int | Sequence): ``backbone``, ``neck``, ``all``, row indices, or a comma-separated mix.

    Returns:
        (dict[int, str]): {base row index: role, e.g. "stage P3 end", "Detect input", ""}, sorted by index.
    """
    return _placement_rows(_load_base(base), _parse_at(at))


def _placement_rows(base: _Base, items: list[str | int]) -> dict[int, str]:
    """Resolve parsed ``at`` items against a loaded base (see ``placement_rows``)."""
    rows = base.cfg["backbone"] + base.cfg["head"]
    last = len(rows) - 1
    roles: dict[int, list[str]] = {}
    names = {x for x in items if isinstance(x, str)}
    if names & {"backbone", "all"}:
        stages = _stage_ends(base)
        if not stages:
            raise ValueError(f"at=backbone: {base.name} has no backbone stage blocks to follow; give row indices")
        for i, role in stages.items():
            roles.setdefault(i, []).append(role)
    if names & {"neck", "all"}:
        for j in _inputs(last, rows[-1][0]):
            roles.setdefault(j, []).append(f"{rows[-1][2]} input")
    for k in (x for x in items if isinstance(x, int)):
        if not 0 <= k < last:
            raise ValueError(
                f"at: row {k} is out of range: {base.name} has rows 0-{last}, and attention can follow rows "
                f"0-{last - 1} (row {last} is the output layer {rows[-1][2]})"
            )
        roles.setdefault(k, [])
    return {k: ", ".join(dict.fromkeys(roles[k])) for k in sorted(roles)}


# ---------------------------------------------------------------------------------------------------- block/args
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
        parsed = _yaml(text if text.startswith("[") else f"[{text}]")
    except yaml.YAMLError as e:
        raise ValueError(f"args: cannot parse {value!r} ({e}); write e.g. args=[16] or args=16,8") from None
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


def _block_name(block: str) -> str:
    """Return the registered name for ``block`` (case-insensitive), or raise the registry's did-you-mean error."""
    if block in BLOCKS:
        return block
    matches = [name for name in BLOCKS.names() if name.lower() == str(block).lower()]
    if len(matches) == 1:
        return matches[0]
    raise KeyError(BLOCKS.unknown_message(str(block)))


def _check_args(name: str, args: object) -> list:
    """Return ``args`` as a list after building the block once with them (its own checks name a bad argument)."""
    if args is None:
        return []
    args = list(args) if isinstance(args, (list, tuple)) else [args]
    try:
        BLOCKS.get(name)(64, *args)
    except (TypeError, ValueError) as e:
        raise ValueError(f"args {args} for {name}: {e}") from None
    return args


# ---------------------------------------------------------------------------------------------------- emitting
def _flow(v: object) -> str:
    """Write ``v`` as a one-line YAML flow value in the upstream style (bare names, True/False, [a, b])."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        mantissa, e, exp = r.partition("e")
        return f"{mantissa}.0e{exp}" if e and "." not in mantissa else r  # YAML 1.1 reads 1e-05 as a string
    if isinstance(v, str):
        bare = _BARE_STRING.fullmatch(v) and _yaml(v) == v
        return v if bare else json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(_flow, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_flow(k)}: {_flow(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} ({type(v).__name__}) into a model YAML")


def _split_flow(text: str) -> tuple[list[str], str] | None:
    """Split ``[a, [b, c], "d"] # note`` into its top-level field texts and the comment; None if it is not that."""
    if not text.startswith("["):
        return None
    depth, quote, start, fields = 0, "", 1, []
    for pos, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                fields.append(text[start:pos].strip())
                rest = text[pos + 1 :].strip()
                return (fields, rest[1:].strip()) if not rest or rest.startswith("#") else None
        elif ch == "," and depth == 1:
            fields.append(text[start:pos].strip())
            start = pos + 1
    return None


def _source_rows(text: str, section: str, rows: list[list]) -> list[_SourceRow | None]:
    """Return the written form of each row of ``section``, or Nones when the file does not write one row per line."""
    found, current, blank = [], None, False
    for line in text.splitlines():
        key = _TOP_KEY.match(line)
        if key:
            current, blank = key.group(1), False
        elif current == section and not line.strip():
            blank = True
        elif current == section and line.lstrip().startswith("-"):
            split = _split_flow(line.lstrip()[1:].strip())
            found.append(_SourceRow(split[0], split[1], blank) if split else None)
            blank = False
    ok = len(found) == len(rows) and all(
        s is not None and len(s.fields) == 4 and _yaml(f"[{', '.join(s.fields)}]") == row for s, row in zip(found, rows)
    )
    return found if ok else [None] * len(rows)


def _key_blocks(text: str) -> tuple[list[str], dict[str, tuple[bool, list[str], list[str]]]]:
    """Split the base text into its header and, per top-level key: (blank line before, comment lines, key lines)."""
    lines = text.splitlines()
    header, blocks, pending, current = [], {}, [], None
    for line in lines:
        key = _TOP_KEY.match(line)
        if key:
            lead = []
            while pending and pending[-1].lstrip().startswith("#"):
                lead.insert(0, pending.pop())
            if current is None:
                header = pending
            current = key.group(1)
            blocks[current] = (bool(pending) and not pending[-1].strip(), lead, [line])
            pending = []
        elif current is not None and line.startswith((" ", "\t", "-")) and line.strip():
            if pending:  # comment/blank lines inside a value belong to it
                blocks[current][2].extend(pending)
                pending = []
            blocks[current][2].append(line)
        else:
            pending.append(line)
    if current is None:
        header = pending
    return header, blocks


def _scaled_name(name: str, scale: str) -> str | None:
    """Return ``name`` with the scale letter where Ultralytics reads it (yolov8-seg.yaml -> yolov8n-seg.yaml)."""
    match = _SCALABLE_NAME.match(name)
    return f"{match.group(1)}{scale}{match.group(2)}" if match else None


def _scales_lines(scales: dict, out_name: str) -> list[str]:
    """Write the ``scales:`` block (the base's per-scale summaries are dropped: their numbers no longer hold)."""
    first = next(iter(scales))
    scaled = _scaled_name(out_name, first)
    note = (
        f"i.e. 'model={scaled}' will call {out_name} with scale '{first}'"
        if scaled
        else f"the file name has no scale letter, so Ultralytics uses '{first}'"
    )
    lines = [f"scales: # model compound scaling constants, {note}", "  # [depth, width, max_channels]"]
    for key, values in scales.items():
        text = [f"{v:.2f}" if isinstance(v, float) and round(v, 2) == v else _flow(v) for v in values]
        lines.append(f"  {key}: [{', '.join(text)}]")
    return lines


def _row_line(index: int, row: list, source: _SourceRow | None, note: str) -> str:
    """Write one row as ``- [from, n, module, args] # index note``, keeping the base's text for n/module/args."""
    f, n, m, args = row
    body = f"{_flow(f)}, {', '.join(source.fields[1:])}" if source else f"{_flow(f)}, {_flow(n)}, {m}, {_flow(args)}"
    sep = "" if note.startswith("-") or not note else " "
    return f"  - [{body}] # {index}{sep}{note}"


def _section_lines(
    name: str, rows: list[list], sources: list[_SourceRow | None], start: int, notes: dict[int, str]
) -> list[str]:
    """Write a backbone/head section; ``notes`` holds the comments of the inserted rows by new index."""
    lines = [f"{name}:"] + (["  # [from, repeats, module, args]"] if name == "backbone" else [])
    source_iter = iter(sources)
    for offset, row in enumerate(rows):
        index = start + offset
        if index in notes:
            lines.append(_row_line(index, row, None, notes[index]))
            continue
        source = next(source_iter)
        if source and source.blank_before and offset:
            lines.append("")
        note = _LEADING_INDEX.sub("", source.comment).strip() if source else ""
        lines.append(_row_line(index, row, source, note))
    return lines


def _command(base: str, block: str, at: str, args: list | None) -> str:
    """Return the ``yolo-attn make-config`` command that regenerates a config."""
    extra = f" args={_flow(args).replace(' ', '')}" if args else ""
    return f"yolo-attn make-config base={base} block={block} at={at}{extra}"


# ---------------------------------------------------------------------------------------------------- generate
def _header_lines(header: list[str], command: str, summary: str) -> list[str]:
    """Return the kit header (how the file was made) followed by the base's own description (``header``)."""
    if header and header[0].startswith(GENERATED_MARK):  # a generated base: its own recipe no longer applies
        header = header[header.index("") :] if "" in header else []
    header = [line for line in header if "AGPL-3.0" not in line]  # the license line is replaced by ours
    while header and not header[0].strip():
        header.pop(0)
    while header and not header[-1].strip():
        header.pop()
    wrapped = [f"# {line}" for line in textwrap.wrap(summary, 116)]
    kit = [f"{GENERATED_MARK}, AGPL-3.0 like the Ultralytics config it extends", f"# Generated by: {command}"]
    return [*kit, *wrapped, "", *header]


def _generated_dict(cfg: dict, name: str, rows: list[list], new_nb: int) -> dict:
    """Return the generated model dict: the base's parameters (plus NAM's penalty), then the new rows."""
    params = {k: v for k, v in cfg.items() if k not in ("backbone", "head")}
    if name == "NAM":
        params.setdefault("nam_penalty", 1.0e-4)  # after the other parameters, as in the ready-made NAM config
    return {**params, "backbone": rows[:new_nb], "head": rows[new_nb:]}


def _generate(
    base: str | os.PathLike, block: str, at: str | int | Sequence[str | int], args: object, out_name: str | None
) -> tuple[dict, str]:
    """Build the generated model dict and its YAML text (see ``make_config``)."""
    src, name, items = _load_base(base), _block_name(block), _parse_at(at)
    args = _check_args(name, args)
    roles = _placement_rows(src, items)
    cfg, nb = src.cfg, len(src.cfg["backbone"])
    rows, new_index, attention = _insert(
        cfg["backbone"] + cfg["head"], list(roles), lambda k: [-1, 1, name, list(args)]
    )
    new_nb = nb + sum(k < nb for k in attention)
    generated = _generated_dict(cfg, name, rows, new_nb)

    named = [PLACEMENT_TEXT[x] for x in dict.fromkeys(items) if isinstance(x, str)]
    summary = (
        f"The base model plus one {name} row after each of its rows {', '.join(map(str, roles))}"
        + (f" ({'; '.join(named)})" if named else "")
        + ". Every other row is the base's; 'from' indices follow the inserted rows."
    )
    command = _command(src.name, name, ",".join(map(str, items)), args)
    header, blocks = _key_blocks(src.text)
    lines = _header_lines(header, command, summary)
    notes = {a: roles[k] or f"after {new_index[k]}" for k, a in attention.items()}  # "# 3 stage P2 end" style
    for key in generated:
        if key == "nam_penalty" and key not in cfg:
            lines.append(NAM_PENALTY_LINE)
            continue
        blank, lead, body = blocks.get(key, (True, [], []))
        lines += ([""] if blank and lines[-1] != "" else []) + lead
        if key == "scales" and isinstance(cfg[key], dict):
            lines += _scales_lines(cfg[key], out_name or f"{src.path.stem}-{name.lower()}.yaml")
        elif key in ("backbone", "head"):
            sources = _source_rows(src.text, key, cfg[key])
            lines += _section_lines(key, generated[key], sources, 0 if key == "backbone" else new_nb, notes)
        else:  # other parameters: the base's own line(s) when they say the same, else a flow value
            lines += body if body and _yaml("\n".join(body)) == {key: cfg[key]} else [f"{key}: {_flow(cfg[key])}"]
    text = "\n".join(lines) + "\n"
    if _yaml(text) != generated:  # the file must say exactly what make_config returns
        raise RuntimeError(f"yolo-attn make-config wrote YAML that does not read back as the generated model:\n{text}")
    return generated, text


def render_config(
    base: str | os.PathLike,
    block: str,
    at: str | int | Sequence[str | int] = "backbone",
    args: object = None,
    name: str | None = None,
) -> str:
    """Return the YAML text of a generated config (see ``make_config``).

    Args:
        base (str | os.PathLike): Model YAML name or path.
        block (str): Registered attention block name (case-insensitive).
        at (str | int | Sequence): Placement: ``backbone``, ``neck``, ``all``, row indices, or a mix.
        args (object, optional): The block's YAML arguments (a list, or one value); default: the block's defaults.
        name (str, optional): File name the config will have, used in its ``scales`` comment.

    Returns:
        (str): The YAML text.
    """
    return _generate(base, block, at, args, name)[1]


def make_config(
    base: str | os.PathLike,
    block: str,
    at: str | int | Sequence[str | int] = "backbone",
    args: object = None,
    out: str | os.PathLike | None = None,
) -> dict:
    """Generate a model config: ``base`` plus one ``block`` row after each row ``at`` picks, all references rewritten.

    Args:
        base (str | os.PathLike): Model YAML name or path: a stock Ultralytics name (``yolov8-seg.yaml``,
            ``yolo11.yaml``; a scale letter as in ``yolov8n-seg.yaml`` is accepted and the output keeps all scales),
            a kit config name, or a file.
        block (str): Registered attention block name (``NAM``, ``SimAM``, ``SE``, ``DAS``; case-insensitive).
        at (str | int | Sequence): ``backbone`` (after the last stage block of each backbone stride level), ``neck``
            (after each layer the output row reads), ``all`` (both), row indices of the base (``"3,6"``, ``[3, 6]``),
            or a comma-separated mix (``"backbone,12"``).
        args (object, optional): The block's YAML arguments, e.g. ``[16]`` for SE; default: the block's defaults.
        out (str | os.PathLike, optional): Write the YAML here (``.yaml``/``.yml``; parent directories created).

    Returns:
        (dict): The generated model dict, equal to the written file read back.

    Raises:
        FileNotFoundError: ``base`` not found (the message lists close names).
        KeyError: Unknown block (with the registry's did-you-mean).
        ValueError: Unknown placement, row index out of range, bad block arguments, bad ``out`` suffix, or a base
            whose backbone cannot be built for ``at=backbone``.
    """
    if out is not None and Path(out).suffix.lower() not in {".yaml", ".yml"}:
        raise ValueError(f"out: '{out}' must end in .yaml or .yml (Ultralytics builds a model from a YAML by suffix)")
    cfg, text = _generate(base, block, at, args, Path(out).name if out is not None else None)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    return cfg
