"""Generation: load the base, pick the rows, insert the block rows (``yolo_attn.rows``), write the YAML text."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..rows import insert_rows
from .blockargs import block_name, check_args, config_docs, config_params
from .emit import command_line, flow, header_lines, key_blocks, param_line, scales_lines, section_lines, source_rows
from .lookup import Base, load_base, read_yaml
from .placement import PLACEMENT_TEXT, parse_at, resolve_placement

__all__ = ["make_config", "render_config"]


def _generated_dict(cfg: dict, name: str, rows: list[list], new_nb: int) -> dict:
    """Return the generated model dict: the base's parameters, then the block's config keys, then the new rows."""
    params = {k: v for k, v in cfg.items() if k not in ("backbone", "head")}
    for key, value in config_params(name).items():
        params.setdefault(key, value)  # the base's own value wins (a generated base already has it)
    return {**params, "backbone": rows[:new_nb], "head": rows[new_nb:]}


def _summary(name: str, roles: dict[int, str], items: list[str | int]) -> str:
    """Return the header paragraph saying what was inserted where."""
    named = [PLACEMENT_TEXT[x] for x in dict.fromkeys(items) if isinstance(x, str)]
    return (
        f"The base model plus one {name} row after each of its rows {', '.join(map(str, roles))}"
        + (f" ({'; '.join(named)})" if named else "")
        + ". Every other row is the base's; 'from' indices follow the inserted rows."
    )


def _text(src: Base, name: str, generated: dict, command: str, summary: str, notes: dict[int, str],
          new_nb: int, out_name: str | None) -> str:
    """Write the generated dict as YAML text in the base's own layout."""
    cfg = src.cfg
    header, blocks = key_blocks(src.text)
    lines = header_lines(header, command, summary)
    docs = config_docs(name)
    for key in generated:
        if key not in cfg:  # a key the block adds: one line, with the block's comment for it
            lines.append(param_line(key, generated[key], docs.get(key, "")))
            continue
        blank, lead, body = blocks.get(key, (True, [], []))
        lines += ([""] if blank and lines[-1] != "" else []) + lead
        if key == "scales" and isinstance(cfg[key], dict):
            lines += scales_lines(cfg[key], out_name or f"{src.path.stem}-{name.lower()}.yaml")
        elif key in ("backbone", "head"):
            sources = source_rows(src.text, key, cfg[key])
            lines += section_lines(key, generated[key], sources, 0 if key == "backbone" else new_nb, notes)
        else:  # other parameters: the base's own line(s) when they say the same, else a flow value
            same = body and read_yaml("\n".join(body)) == {key: cfg[key]}
            lines += body if same else [f"{key}: {flow(cfg[key])}"]
    return "\n".join(lines) + "\n"


def _generate(
    base: str | os.PathLike, block: str, at: str | int | Sequence[str | int], args: object, out_name: str | None
) -> tuple[dict, str]:
    """Build the generated model dict and its YAML text (see ``make_config``)."""
    src, name, items = load_base(base), block_name(block), parse_at(at)
    args = check_args(name, args)
    roles = resolve_placement(src, items)
    nb = len(src.cfg["backbone"])
    ins = insert_rows(src.rows, list(roles), lambda k: [-1, 1, name, list(args)])
    new_nb = nb + sum(k < nb for k in ins.inserted)
    generated = _generated_dict(src.cfg, name, ins.rows, new_nb)
    command = command_line(src.name, name, ",".join(map(str, items)), args)
    notes = {a: roles[k] or f"after {ins.new_index[k]}" for k, a in ins.inserted.items()}  # "# 3 stage P2 end"
    text = _text(src, name, generated, command, _summary(name, roles, items), notes, new_nb, out_name)
    if read_yaml(text) != generated:  # the file must say exactly what make_config returns
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
        block (str): Registered attention block name or alias (case-insensitive).
        at (str | int | Sequence): Placement: ``backbone``, ``neck``, ``all``, row indices, or a mix.
        args (object, optional): The block's YAML arguments (a list, or one value); default: the block's
            ``config_args``.
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
        block (str): Registered attention block name or alias (``yolo-attn list`` shows them; case-insensitive).
        at (str | int | Sequence): ``backbone`` (after the last stage block of each backbone stride level), ``neck``
            (after each layer the output row reads), ``all`` (both), row indices of the base (``"3,6"``, ``[3, 6]``),
            or a comma-separated mix (``"backbone,12"``).
        args (object, optional): The block's YAML arguments, e.g. ``[16]``; default: the block's ``config_args``.
            The block's ``config_params`` (e.g. a penalty default) become top-level keys of the config.
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
