"""Generated files are current: ``scripts/make_configs.py --check`` passes, and what it generates follows the registry.

The script writes, for every registered block, the ready-made configs and the README block table; a new block file
needs only a rerun of it. Building the configs is tested elsewhere (``test_integration.py``: every detection config at
every scale; ``test_configgen.py``: the other tasks).
"""

from __future__ import annotations

import re
import subprocess
import sys

import yaml
from conftest import KIT_BLOCKS, ROOT

from yolo_attn import BLOCKS

SCRIPT = ROOT / "scripts" / "make_configs.py"
STEMS = ("yolov8", "yolov8-seg", "yolov8-pose", "yolov8-obb", "yolov8-cls", "yolo11")


def test_check_passes(env_subprocess):
    """``--check`` exits 0: cfg/ and the README table equal fresh generator output (else: rerun the script)."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], env=env_subprocess, cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}\nrun: python scripts/make_configs.py"


def test_every_block_has_its_configs():
    """Each registered block has the full set, detection with n-x scales, its rows using its ``config_args``."""
    for name, cls in KIT_BLOCKS:
        for stem in STEMS:
            path = ROOT / "cfg" / f"{stem}-{name.lower()}.yaml"
            assert path.is_file(), f"{path.name} missing: run python scripts/make_configs.py"
            d = yaml.safe_load(path.read_text(encoding="utf-8"))
            rows = [r for r in d["backbone"] + d["head"] if r[2] == name]
            assert len(rows) == 4 and all(r[3] == list(cls.config_args) for r in rows), path.name
            assert all(d.get(k) == v for k, v in cls.config_params.items()), path.name
            assert set(d["scales"]) == set("nslmx"), path.name


def test_readme_table_lists_every_block():
    """The README table has one row per block, with its paper, aliases and every argument's allowed values."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- generated: block table.*?-->\n(.*?)<!-- end of generated block table -->", text, re.S)
    assert table, "README.md lost its generated block table markers"
    rows = [line for line in table[1].splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == [n for n, _ in KIT_BLOCKS]
    for row, (name, cls) in zip(rows, KIT_BLOCKS):
        assert cls.paper in row and all(f"`{a}`" in row for a in BLOCKS.aliases(name)), name
        assert all(f"`{a.name}={a.default!r}`: {a.describe()}" in row for a in cls.args), name
