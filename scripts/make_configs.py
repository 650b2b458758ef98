"""Regenerate everything that lists the blocks: the ready-made configs and the README block table (``--check``: fail if
any is stale).

    python scripts/make_configs.py           # rewrite cfg/<base>-<block>.yaml and the README table
    python scripts/make_configs.py --check   # exit 1, naming the stale files, if they differ from the generator

For every block in the registry (``yolo_attn.BLOCKS``, filled by the files in ``yolo_attn/modules/``):

- ``cfg/yolov8-<block>.yaml`` (detection, n-x through ``scales:``), unless a hand-written one exists (a file there
  that does not start with the generator's header; the original four keep theirs, each explaining its paper's
  placement, and the generator reproduces their rows);
- ``cfg/yolov8-{seg,pose,obb,cls}-<block>.yaml`` and ``cfg/yolo11-<block>.yaml``.

Each config is a stock Ultralytics model with one block after the last block of each backbone stage
(``at=backbone``), with the block's ``config_args`` and ``config_params`` (``yolo_attn.configgen.render_config``).
``<block>`` is the registered name in lower case. The README's block table, between its two ``generated`` markers,
lists each block's paper, formula, parameters, YAML arguments (defaults and allowed values) and aliases, from the
class declarations.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
os.environ.setdefault("YOLO_OFFLINE", "1")

from yolo_attn import BLOCKS  # noqa: E402
from yolo_attn.configgen import render_config  # noqa: E402

__all__ = ["AT", "BASES", "DETECT", "README_BEGIN", "README_END", "block_table", "config_name", "expected", "main"]

DETECT = "yolov8.yaml"
BASES = ("yolov8-seg.yaml", "yolov8-pose.yaml", "yolov8-obb.yaml", "yolov8-cls.yaml", "yolo11.yaml")
AT = "backbone"
GENERATED_HEADER = "# yolo-attn - generated config"  # first line of every config render_config writes
README_BEGIN = "<!-- generated: block table (python scripts/make_configs.py) -->"
README_END = "<!-- end of generated block table -->"


def kit_blocks() -> list[tuple[str, type]]:
    """Return ``(name, class)`` for the kit's own blocks (defined in ``yolo_attn/modules/``), in registry order."""
    return [(n, c) for n, c in BLOCKS.items() if c.__module__.startswith("yolo_attn.modules.")]


def config_name(base: str, block: str) -> str:
    """Return the file name of a generated config, e.g. ``yolov8-seg-se.yaml``.

    Args:
        base (str): Stock base YAML name.
        block (str): Registered block name.

    Returns:
        (str): The file name.
    """
    return f"{Path(base).stem}-{block.lower()}.yaml"


def _hand_written(path: Path) -> bool:
    """Return whether ``path`` is a hand-written config (present, and not the generator's output)."""
    return path.is_file() and not path.read_text(encoding="utf-8").startswith(GENERATED_HEADER)


def _cell(text: str) -> str:
    """Escape a Markdown table cell (a ``|`` would end it, even inside code)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _args_cell(cls: type) -> str:
    """Return the YAML-arguments cell: each argument with its default, allowed values and meaning."""
    if not cls.args:
        return "none"
    parts = [f"`{a.name}={a.default!r}`: {a.describe()}" + (f"; {a.doc}" if a.doc else "") for a in cls.args]
    return _cell("<br>".join(parts))


def block_table() -> str:
    """Return the README block table (Markdown), one row per kit block, from the class declarations.

    Returns:
        (str): The table, ending with a newline.
    """
    lines = [
        "| block | paper | gate, in one line | parameters added | YAML args: default, allowed values | aliases |",
        "|---|---|---|---|---|---|",
    ]
    for name, cls in kit_blocks():
        aliases = ", ".join(f"`{a}`" for a in BLOCKS.aliases(name)) or "-"
        cells = [f"`{name}`", _cell(cls.paper), f"`{_cell(cls.formula)}`", _cell(cls.params), _args_cell(cls), aliases]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Choices where the papers leave room (each block's file opens with the paper, the formula and the shape "
              "contract):", ""]
    for name, cls in kit_blocks():
        if cls.notes:
            lines.append(textwrap.fill(f"- **{name}** {cls.notes}", 116, subsequent_indent="  ", break_on_hyphens=False))
    return "\n".join(lines) + "\n"


def _readme(text: str) -> str:
    """Return the README text with the block table between its markers replaced."""
    if text.count(README_BEGIN) != 1 or text.count(README_END) != 1:
        raise SystemExit(f"README.md must hold the markers {README_BEGIN!r} and {README_END!r} once each")
    head, rest = text.split(README_BEGIN)
    _, tail = rest.split(README_END)
    return f"{head}{README_BEGIN}\n{block_table()}{README_END}{tail}"


def expected(cfg_dir: Path = ROOT / "cfg", readme: Path = ROOT / "README.md") -> dict[Path, str]:
    """Return {path: text the generator writes} for every generated file.

    Args:
        cfg_dir (Path): Directory of the ready-made configs.
        readme (Path): The README holding the block table.

    Returns:
        (dict[Path, str]): The files and their contents.
    """
    out = {}
    for block, cls in kit_blocks():
        args = list(cls.config_args) or None
        for base in (DETECT, *BASES):
            path = cfg_dir / config_name(base, block)
            if base == DETECT and _hand_written(path):
                continue
            out[path] = render_config(base, block, at=AT, args=args, name=path.name)
    out[readme] = _readme(readme.read_text(encoding="utf-8"))
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the generated files, or with ``--check`` report the stale ones.

    Args:
        argv (list[str], optional): Command-line arguments; defaults to ``sys.argv[1:]``.

    Returns:
        (int): Exit status: 0, or 1 when ``--check`` finds a stale or missing file.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    check = parser.parse_args(argv).check
    stale = []
    for path, text in expected().items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        if check:
            stale.append(path.relative_to(ROOT))
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("stale (run python scripts/make_configs.py):", *stale, sep="\n  ")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
