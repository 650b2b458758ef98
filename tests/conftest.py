"""Test environment: offline, and every file Ultralytics or the kit writes goes to a temporary directory.

The variables are set before anything imports Ultralytics, which reads them at import time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="yolo-attn-tests-"))
os.environ.update(
    YOLO_OFFLINE="1",
    YOLO_CONFIG_DIR=str(_TMP / "ultralytics-config"),
    YOLO_ATTN_HOME=str(_TMP / "yolo-attn-home"),
    YOLO_VERBOSE="False",
    MPLBACKEND="Agg",
)

ROOT = Path(__file__).resolve().parent.parent

from yolo_attn import BLOCKS  # noqa: E402 - after the environment: importing the kit imports Ultralytics

KIT_BLOCKS = [(n, c) for n, c in BLOCKS.items() if c.__module__.startswith("yolo_attn.modules.")]
"""The kit's registered blocks, ``(name, class)``, in registry order (blocks registered by tests excluded)."""
CONFIGS = [n.lower() for n, _ in KIT_BLOCKS]
"""Config stem of each kit block: ``yolov8n-<stem>.yaml`` and the other ready-made configs."""
CONFIG_BLOCKS = {n.lower(): n for n, _ in KIT_BLOCKS}
"""Config stem -> registered block name."""


def pytest_sessionfinish(session, exitstatus):
    """Remove the temporary settings, datasets and runs."""
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_data() -> Path:
    """A tiny built-in dataset (16 train / 8 val images at 96 px) for fast training tests."""
    from yolo_attn.data import make_digits_dataset

    return make_digits_dataset(_TMP / "tiny-digits", n_train=16, n_val=8, imgsz=96, seed=0)


@pytest.fixture
def env_subprocess() -> dict:
    """Environment for child processes: the same offline, temp-dir settings, the checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def run_python(code: str, env: dict, cwd: Path | None = None, timeout: int = 600):
    """Run ``code`` in a fresh interpreter and return the CompletedProcess (stdout/stderr captured as text)."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
