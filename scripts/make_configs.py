"""Regenerate the ready-made configs produced by ``yolo-attn make-config`` (``--check``: fail if any is stale).

    python scripts/make_configs.py           # rewrite cfg/<base>-<block>.yaml
    python scripts/make_configs.py --check   # exit 1, naming the stale files, if cfg/ differs from the generator

Each config is a stock Ultralytics model with one block after the last block of each backbone stage (``at=backbone``),
the placement of the hand-written YOLOv8 detection configs ``cfg/yolov8-{nam,simam,se,das}.yaml``, with the same
block arguments. Those four keep their hand-written headers (each explains its paper's placement) and are not
regenerated here; the generator reproduces their rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from yolo_attn.configgen import render_config  # noqa: E402

__all__ = ["ARGS", "BASES", "expected", "main"]

BASES = ("yolov8-seg.yaml", "yolov8-pose.yaml", "yolov8-obb.yaml", "yolov8-cls.yaml", "yolo11.yaml")
ARGS = {"NAM": [], "SimAM": [], "SE": [16], "DAS": [0.2]}  # as in the hand-written detection configs
AT = "backbone"


def expected(cfg_dir: Path = ROOT / "cfg") -> dict[Path, str]:
    """Return {config path: text the generator writes} for every generated ready-made config.

    Args:
        cfg_dir (Path): Directory of the ready-made configs.

    Returns:
        (dict[Path, str]): The files and their contents.
    """
    out = {}
    for base in BASES:
        for block, args in ARGS.items():
            path = cfg_dir / f"{Path(base).stem}-{block.lower()}.yaml"
            out[path] = render_config(base, block, at=AT, args=args or None, name=path.name)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the configs, or with ``--check`` report the stale ones.

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
