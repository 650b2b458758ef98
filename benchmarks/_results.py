"""Shared by the benchmark scripts: how their JSON results are written (to benchmarks/results/, git-ignored)."""

from __future__ import annotations

import json
import os

__all__ = ["write_json"]


def write_json(res: dict, path: str) -> None:
    """Write ``res`` as indented JSON to ``path`` (creating its folder) and say where.

    Args:
        res (dict): The results.
        path (str): Output file.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(res, f, indent=2)
    print(f"wrote {path}")
