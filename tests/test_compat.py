"""Supported Ultralytics range and DDP: the declared range agrees everywhere, unknown versions and parser shapes fail
loudly, and a DDP worker file written by the installed Ultralytics (plain import or cloudpickle) registers the blocks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import ultralytics
import ultralytics.nn.tasks as tasks
import ultralytics.utils.dist as dist
from conftest import CONFIG_BLOCKS, CONFIGS, KIT_BLOCKS, ROOT

import yolo_attn
from yolo_attn.integration.compat import SUPPORTED, UnsupportedUltralyticsError, check_ultralytics, parse_version
from yolo_attn.integration.ddp import MARKER, ddp_header


def _spec() -> str:
    return f">={'.'.join(map(str, SUPPORTED[0]))},<{'.'.join(map(str, SUPPORTED[1]))}"


def test_supported_range_matches_pyproject_and_installed():
    """pyproject's ultralytics pin is SUPPORTED, and the installed release lies inside it."""
    pin = re.search(r'"ultralytics([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    lo, hi = re.fullmatch(r">=([\d.]+),<([\d.]+)", pin).groups()
    assert (parse_version(lo), parse_version(hi)) == SUPPORTED
    assert SUPPORTED[0] <= parse_version(ultralytics.__version__) < SUPPORTED[1]


@pytest.mark.parametrize("version", ["8.2.103", "7.0.0", "8.5.0", "9.0.1"])
def test_out_of_range_refused(version, monkeypatch):
    """Versions outside the range are refused with the installed and supported versions and the pip fix."""
    monkeypatch.delenv("YOLO_ATTN_ALLOW_ANY_ULTRALYTICS", raising=False)
    with pytest.raises(UnsupportedUltralyticsError, match=rf"supports ultralytics{re.escape(_spec())}, but "
                       rf"ultralytics {re.escape(version)} is installed.*pip install"):
        check_ultralytics(tasks, version)


@pytest.mark.parametrize("version", ["8.3.0", "8.3.253", "8.4.0", "8.4.190rc1"])
def test_in_range_accepted(version):
    """Both ends of the range (and pre-releases inside it) pass with the installed parser."""
    check_ultralytics(tasks, version, dist)


def test_foreign_parser_and_ddp_refused_even_when_any_version_allowed(monkeypatch):
    """The override skips only the range: a parser or DDP generator of another shape still fails loudly."""
    monkeypatch.setenv("YOLO_ATTN_ALLOW_ANY_ULTRALYTICS", "1")
    check_ultralytics(tasks, "9.9.9", dist)

    def parse_model(spec, channels):  # no globals() lookup, other local names
        return spec, channels

    with pytest.raises(UnsupportedUltralyticsError, match=r"9\.9\.9.*parse_model no longer has the shape"):
        check_ultralytics(type("Tasks", (), {"parse_model": staticmethod(parse_model)}), "9.9.9")
    with pytest.raises(UnsupportedUltralyticsError, match=r"parse_model no longer has the shape"):
        check_ultralytics(type("Tasks", (), {}), "9.9.9")

    def generate_ddp_file(config):  # renamed parameter: not the trainer-based generator the hook wraps
        return config

    for fake in (type("Dist", (), {}), type("Dist", (), {"generate_ddp_file": staticmethod(generate_ddp_file)})):
        with pytest.raises(UnsupportedUltralyticsError, match=r"generate_ddp_file\(trainer\) is gone or changed"):
            check_ultralytics(tasks, "9.9.9", fake)


def test_ddp_hook_installed_once():
    """register() wraps the DDP file generator exactly once, however often it runs."""
    yolo_attn.register()
    yolo_attn.register()
    assert dist.generate_ddp_file._yolo_attn and not hasattr(dist.generate_ddp_file.__wrapped__, "_yolo_attn")


def test_ddp_header_reregisters_importable_user_blocks():
    """User blocks importable by module path are re-registered in the worker; the kit's own are not repeated."""
    from torch.nn import Identity

    name, cls = yolo_attn.BLOCKS.items()[0]  # a kit block: not repeated in the header
    reg = yolo_attn.Registry("attention block", {name: cls, "Ident": Identity})
    header = ddp_header(reg)
    reregistered = [ln for ln in header.splitlines() if ln.startswith("_ya.BLOCKS.register(")]
    assert header.startswith(MARKER) and header.splitlines()[-1].startswith("_ya.register()")
    assert reregistered == ["_ya.BLOCKS.register(__import__('torch.nn.modules.linear', fromlist=['_']).Identity, 'Ident')"]
    compile(header, "<ddp header>", "exec")


# Stands in for the trainer's train(): build the model the way the worker would, report, stop. It imports nothing of
# the kit, so whatever is registered in the worker got there through the DDP file itself.
_STOP_AT_MODEL = """
import json, runpy, sys
NAMES = sys.argv.pop(2).split(",")
from ultralytics.engine.trainer import BaseTrainer

def train(self):
    import ultralytics.nn.tasks as t
    model = self.get_model(cfg=self.args.model, weights=None, verbose=False)
    kit = [type(m).__name__ for m in model.modules() if type(m).__name__ in NAMES]
    hooks = sorted({e for e, fns in self.callbacks.items() for f in fns if f.__module__.startswith("yolo_attn")})
    print("RESULT " + json.dumps({"registered": [n for n in NAMES if hasattr(t, n)],
                                  "blocks": kit, "kit_callbacks": hooks}))

BaseTrainer.train = train
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def _run_worker(file: Path, env: dict, cwd: Path) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run a DDP file up to model construction in a fresh interpreter; return the process and its RESULT line."""
    names = ",".join(n for n, _ in KIT_BLOCKS)
    proc = subprocess.run([sys.executable, "-c", _STOP_AT_MODEL, str(file), names], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    return proc, json.loads(lines[-1][7:]) if proc.returncode == 0 and lines else None


def test_ddp_worker_file_registers_blocks(tiny_data, tmp_path, env_subprocess):
    """The DDP file of the installed Ultralytics, run in a fresh interpreter with no start-up hook and no
    PYTHONPATH, builds a kit model from YAML with blocks and kit callbacks registered. For the plain-import format
    (8.3.x, early 8.4.x) the same file without the kit's header must fail: the header is what registers the kit."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    stem, block = CONFIGS[-1], CONFIG_BLOCKS[CONFIGS[-1]]  # any kit config: blocks only the kit can build
    overrides = dict(model=f"yolov8n-{stem}.yaml", data=str(tiny_data), epochs=1, batch=2, imgsz=64, workers=0,
                     device="cpu", project=str(tmp_path), name="ddp", plots=False, verbose=False)
    trainer = DetectionTrainer(overrides=overrides)
    env = dict(env_subprocess, PYTHONPATH="", YOLO_ATTN_AUTOLOAD="0")  # only the DDP file may bring the kit in
    file = Path(dist.generate_ddp_file(trainer))
    state = file.with_suffix(".pt")
    fmt = "cloudpickle" if state.exists() else "plain import"
    try:
        assert file.read_text().startswith(MARKER), fmt
        proc, result = _run_worker(file, env, tmp_path)
        assert result, f"{fmt} DDP file failed:\n{(proc.stdout + proc.stderr)[-3000:]}"
        if fmt == "plain import":
            file.write_text(file.read_text().split("_ya.register()", 1)[1].split("\n", 1)[1])
            control, control_result = _run_worker(file, env, tmp_path)
            assert control_result is None and f"yolov8n-{stem}.yaml" in control.stderr, control.stderr[-2000:]
    finally:
        file.unlink(missing_ok=True)
        state.unlink(missing_ok=True)
    assert result["registered"] == [n for n, _ in KIT_BLOCKS], fmt
    assert result["blocks"] == [block] * 4, fmt  # ready-made configs: one block per backbone stage
    assert "on_train_start" in result["kit_callbacks"], fmt  # the sparsity penalty hooks reach the worker's trainer
