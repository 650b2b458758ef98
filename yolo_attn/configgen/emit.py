"""YAML text emission in the upstream style: the base's comments and row text kept, ``# index`` comments renumbered.

The output keeps the base's comments and row text (upstream style), renumbers the ``# index`` row comments, drops
the base's per-scale summaries (their numbers no longer hold), and opens with the command that regenerates it.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass
from decimal import Decimal

from .lookup import read_yaml

__all__ = [
    "GENERATED_MARK",
    "SourceRow",
    "command_line",
    "flow",
    "header_lines",
    "key_blocks",
    "param_line",
    "scales_lines",
    "section_lines",
    "source_rows",
]

GENERATED_MARK = "# yolo-attn - generated config"

_SCALABLE_NAME = re.compile(r"^(yolo(?:e-)?v?\d+)(.*)$")  # where the scale letter goes: yolov8-seg -> yolov8n-seg
_BARE_STRING = re.compile(r"[A-Za-z_][\w.]*")
_TOP_KEY = re.compile(r"^([A-Za-z_]\w*)\s*:")
_LEADING_INDEX = re.compile(r"^\d+(?=[\s\-(]|$)")


@dataclass
class SourceRow:
    """A row as written in the base file: its fields' text (from, repeats, module, args) and trailing comment."""

    fields: list[str]
    comment: str
    blank_before: bool


def _float(v: float) -> str:
    """Write a float so YAML 1.1 reads it back as a float: ``0.2``, ``1.0e-4`` (not ``0.0001``, not ``1e-05``)."""
    r = repr(v)
    if v and abs(v) < 1e-3 and math.isfinite(v):
        mantissa, _, exp = format(Decimal(r), "e").partition("e")  # the shortest digits that read back as v
        return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exp}"
    mantissa, e, exp = r.partition("e")
    return f"{mantissa}.0e{exp}" if e and "." not in mantissa else r  # YAML 1.1 reads 1e+20 as a string


def flow(v: object) -> str:
    """Write ``v`` as a one-line YAML flow value in the upstream style (bare names, True/False, [a, b]).

    Args:
        v (object): A YAML-representable value.

    Returns:
        (str): The flow text.
    """
    if isinstance(v, bool):
        return "True" if v else "False"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, str):
        bare = _BARE_STRING.fullmatch(v) and read_yaml(v) == v
        return v if bare else json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(flow, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{flow(k)}: {flow(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} ({type(v).__name__}) into a model YAML")


def param_line(key: str, value: object, doc: str = "") -> str:
    """Write a top-level parameter line, with its comment when there is one (``nam_penalty: 1.0e-4 # ...``)."""
    return f"{key}: {flow(value)}" + (f" # {doc}" if doc else "")


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


def source_rows(text: str, section: str, rows: list[list]) -> list[SourceRow | None]:
    """Return the written form of each row of ``section``, or Nones when the file does not write one row per line.

    Args:
        text (str): The base file's text.
        section (str): ``backbone`` or ``head``.
        rows (list[list]): The section's parsed rows (the written form must read back as these).

    Returns:
        (list[SourceRow | None]): One entry per row.
    """
    found, current, blank = [], None, False
    for line in text.splitlines():
        key = _TOP_KEY.match(line)
        if key:
            current, blank = key.group(1), False
        elif current == section and not line.strip():
            blank = True
        elif current == section and line.lstrip().startswith("-"):
            split = _split_flow(line.lstrip()[1:].strip())
            found.append(SourceRow(split[0], split[1], blank) if split else None)
            blank = False
    ok = len(found) == len(rows) and all(
        s is not None and len(s.fields) == 4 and read_yaml(f"[{', '.join(s.fields)}]") == row
        for s, row in zip(found, rows)
    )
    return found if ok else [None] * len(rows)


def key_blocks(text: str) -> tuple[list[str], dict[str, tuple[bool, list[str], list[str]]]]:
    """Split a YAML file's text into its header and, per top-level key, (blank line before, comments, key lines).

    Args:
        text (str): The base file's text.

    Returns:
        (tuple): The header lines and {key: (blank before, leading comment lines, the key's own lines)}.
    """
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


def scales_lines(scales: dict, out_name: str) -> list[str]:
    """Write the ``scales:`` block (the base's per-scale summaries are dropped: their numbers no longer hold).

    Args:
        scales (dict): {scale letter: [depth, width, max_channels]}.
        out_name (str): The generated file's name, for the comment on how Ultralytics picks the scale.

    Returns:
        (list[str]): The lines.
    """
    first = next(iter(scales))
    scaled = _scaled_name(out_name, first)
    note = (
        f"i.e. 'model={scaled}' will call {out_name} with scale '{first}'"
        if scaled
        else f"the file name has no scale letter, so Ultralytics uses '{first}'"
    )
    lines = [f"scales: # model compound scaling constants, {note}", "  # [depth, width, max_channels]"]
    for key, values in scales.items():
        text = [f"{v:.2f}" if isinstance(v, float) and round(v, 2) == v else flow(v) for v in values]
        lines.append(f"  {key}: [{', '.join(text)}]")
    return lines


def _row_line(index: int, row: list, source: SourceRow | None, note: str) -> str:
    """Write one row as ``- [from, n, module, args] # index note``, keeping the base's text for n/module/args."""
    f, n, m, args = row
    body = f"{flow(f)}, {', '.join(source.fields[1:])}" if source else f"{flow(f)}, {flow(n)}, {m}, {flow(args)}"
    sep = "" if note.startswith("-") or not note else " "
    return f"  - [{body}] # {index}{sep}{note}"


def section_lines(
    name: str, rows: list[list], sources: list[SourceRow | None], start: int, notes: dict[int, str]
) -> list[str]:
    """Write a backbone/head section.

    Args:
        name (str): ``backbone`` or ``head``.
        rows (list[list]): The section's generated rows.
        sources (list[SourceRow | None]): The base's written rows of this section (see ``source_rows``).
        start (int): Index of the section's first row.
        notes (dict[int, str]): Comments of the inserted rows, by new index.

    Returns:
        (list[str]): The lines.
    """
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


def command_line(base: str, block: str, at: str, args: list | None) -> str:
    """Return the ``yolo-attn make-config`` command that regenerates a config."""
    extra = f" args={flow(args).replace(' ', '')}" if args else ""
    return f"yolo-attn make-config base={base} block={block} at={at}{extra}"


def header_lines(header: list[str], command: str, summary: str) -> list[str]:
    """Return the kit header (how the file was made) followed by the base's own description.

    Args:
        header (list[str]): The base's header lines (see ``key_blocks``).
        command (str): The regenerating command.
        summary (str): What was inserted, one paragraph (wrapped here).

    Returns:
        (list[str]): The lines.
    """
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
