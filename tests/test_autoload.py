"""The start-up hook: the stock `yolo` command and `from ultralytics import YOLO` take kit YAMLs with no import.

These tests need the kit installed (``pip install -e .``), since the hook is the .pth file that the install puts in
site-packages. The last test shows what a user without the kit sees when loading a kit checkpoint.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import KIT_BLOCKS, ROOT, run_python

PTH = "yolo_attn_autoload.pth"
HEAVY = ("torch", "ultralytics", "yolo_attn")  # what the hook must never import at start-up
(YAML_BLOCK, _), (CKPT_BLOCK, _) = KIT_BLOCKS[0], KIT_BLOCKS[1]  # a block tried by YAML name, one by checkpoint


def _canonical(name: str) -> str:
    """PEP 503 normalised project name (what pip compares)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def hook_installed() -> None:
    """Fail with the fix if this environment's kit install predates the hook (the tests below would be moot)."""
    site_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    if not any(Path(d, PTH).is_file() for d in site_dirs):
        pytest.fail(f"{PTH} is not installed for {sys.executable}: reinstall the kit with `pip install -e .`")


@pytest.fixture(scope="module")
def kit_checkpoint(tmp_path_factory) -> Path:
    """An untrained kit YOLOv8n checkpoint, as any kit training run saves it (pickles yolo_attn classes)."""
    import yolo_attn  # noqa: F401 - registers the blocks
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("ckpt") / f"{CKPT_BLOCK.lower()}.pt"
    YOLO(f"yolov8n-{CKPT_BLOCK.lower()}.yaml").save(path)
    return path


def _yolo(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """Run Ultralytics' own `yolo` console script of this interpreter."""
    exe = Path(sys.executable).with_name("yolo")
    exe = str(exe) if exe.exists() else shutil.which("yolo")
    assert exe, "Ultralytics' `yolo` command is not installed next to this Python"
    return subprocess.run([exe, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_startup_is_cheap_and_switchable(hook_installed, env_subprocess, tmp_path):
    """At start-up the hook only adds its finder (no torch/Ultralytics/kit import); YOLO_ATTN_AUTOLOAD=0 disables it."""
    code = "import sys; print(type(sys.meta_path[0]).__name__, sorted(set(sys.modules) & set({!r})))".format(HEAVY)
    on = run_python(code, env_subprocess, cwd=tmp_path)
    off = run_python(code, dict(env_subprocess, YOLO_ATTN_AUTOLOAD="0"), cwd=tmp_path)
    assert on.returncode == 0 and on.stdout.split() == ["AutoloadFinder", "[]"], on.stdout + on.stderr
    assert off.returncode == 0 and off.stdout.split()[0] != "AutoloadFinder", off.stdout + off.stderr


def test_ultralytics_import_loads_kit(hook_installed, kit_checkpoint, env_subprocess, tmp_path):
    """Plain Ultralytics code, no `import yolo_attn`: kit YAMLs by bare name and kit checkpoints work; hook removed."""
    code = f"""
import sys
from ultralytics import YOLO
assert 'yolo_attn' in sys.modules and not any(type(f).__name__ == 'AutoloadFinder' for f in sys.meta_path)
for m in (YOLO('yolov8n-{YAML_BLOCK.lower()}.yaml'), YOLO({str(kit_checkpoint)!r})):
    print(sorted({{type(x).__name__ for x in m.model.modules() if type(x).__module__.startswith('yolo_attn.')}}))
"""
    proc = run_python(code, env_subprocess, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:2] == [f"['{YAML_BLOCK}']", f"['{CKPT_BLOCK}']"], proc.stdout


def test_stock_yolo_train_with_kit_yaml(hook_installed, tiny_data, env_subprocess, tmp_path):
    """`yolo train model=yolov8n-<block>.yaml ...` (Ultralytics' command, no flag) trains a model with kit blocks."""
    args = ["train", f"model=yolov8n-{YAML_BLOCK.lower()}.yaml", f"data={tiny_data}", "epochs=1", "imgsz=64", "batch=8", "workers=0",
            "device=cpu", "plots=False", f"project={tmp_path}", "name=run"]
    proc = _yolo(args, env_subprocess, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import torch

    model = torch.load(tmp_path / "run" / "weights" / "last.pt", map_location="cpu", weights_only=False)["model"]
    assert sum(type(m).__name__ == YAML_BLOCK for m in model.modules()) == 4


def test_switched_off_yolo_fails_with_parser_keyerror(hook_installed, tiny_data, env_subprocess, tmp_path):
    """With YOLO_ATTN_AUTOLOAD=0 the same command hits Ultralytics' own KeyError: the hook is what makes it work."""
    args = ["train", f"model={ROOT / 'cfg' / f'yolov8n-{YAML_BLOCK.lower()}.yaml'}", f"data={tiny_data}", "epochs=1", "imgsz=64",
            "device=cpu", f"project={tmp_path}", "name=run"]
    proc = _yolo(args, dict(env_subprocess, YOLO_ATTN_AUTOLOAD="0"), tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.rstrip().splitlines()[-1] == f"KeyError: '{YAML_BLOCK}'", proc.stderr[-3000:]
    assert "yolo_attn" not in proc.stderr  # the kit's parser wrapper never ran
    assert not (tmp_path / "run" / "weights").exists()


def test_hook_failure_warns_and_ultralytics_still_works(hook_installed, env_subprocess, tmp_path):
    """If the kit cannot load (here: an unsupported Ultralytics), the hook warns once; stock models still build."""
    code = f"""
import ultralytics, warnings
ultralytics.__version__ = '9.0.0'  # outside the supported range: register() refuses
warnings.simplefilter('always')
from ultralytics import YOLO
import ultralytics.nn.tasks  # a second import must not warn again
assert len(YOLO('yolov8n.yaml').model.model) > 10
try:
    YOLO({str(ROOT / 'cfg' / f'yolov8n-{CKPT_BLOCK.lower()}.yaml')!r})
except KeyError as e:
    print('KeyError', e)
"""
    proc = run_python(code, env_subprocess, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == f"KeyError '{CKPT_BLOCK}'", proc.stdout
    assert proc.stderr.count("RuntimeWarning: yolo-attn was not loaded with Ultralytics") == 1, proc.stderr
    assert "ultralytics 9.0.0 is installed" in proc.stderr and "YOLO_ATTN_AUTOLOAD=0" in proc.stderr


def test_checkpoint_without_kit_names_the_package(hook_installed, kit_checkpoint, env_subprocess, tmp_path):
    """Without the kit, loading a kit checkpoint names 'yolo_attn', and pip would resolve that to this project.

    The child hides the kit's modules and distribution metadata, as on a machine without it; it stays offline and
    any pip call fails the test, so nothing is ever installed.
    """
    code = f"""
import importlib.metadata as md, subprocess, sys

class Hide:  # the kit is not installed: its import fails the way a missing package does
    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] == 'yolo_attn':
            raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)

def version(name, _version=md.version):  # nor is its distribution
    if name.replace('-', '_').lower() == 'yolo_attn':
        raise md.PackageNotFoundError(name)
    return _version(name)

def no_pip(cmd, *args, _run=subprocess.check_output, **kwargs):
    assert 'pip' not in ' '.join(map(str, cmd)), f'pip was run: {{cmd}}'
    return _run(cmd, *args, **kwargs)

sys.meta_path.insert(0, Hide())
md.version, subprocess.check_output = version, no_pip
from ultralytics import YOLO
YOLO({str(kit_checkpoint)!r})
"""
    env = dict(env_subprocess, YOLO_ATTN_AUTOLOAD="0", YOLO_VERBOSE="True", YOLO_OFFLINE="1")
    proc = run_python(code, env, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert proc.stderr.rstrip().endswith("ModuleNotFoundError: No module named 'yolo_attn'"), out[-3000:]
    assert "appears to require 'yolo_attn'" in out and "pip was run" not in out, out[-3000:]
    wanted = re.search(r"requirement \['([^']+)'\] not found", out)
    assert wanted, out[-3000:]  # the name Ultralytics would `pip install` (it skips that offline)
    assert _canonical(wanted[1]) == _canonical(md.packages_distributions()["yolo_attn"][0]) == "yolo-attn"
