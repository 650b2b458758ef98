"""Parser integration: ready-made configs, custom rows, stock models untouched, errors, registration guard."""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import ultralytics
import ultralytics.nn.tasks as tasks
import yaml
from conftest import CONFIGS, KIT_BLOCKS, run_python
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel, yaml_model_load

import yolo_attn
from yolo_attn import BLOCKS
from yolo_attn.integration.compat import UnsupportedUltralyticsError, check_ultralytics

BLOCK_TYPES = tuple(cls for _, cls in KIT_BLOCKS)
NAMES = [name for name, _ in KIT_BLOCKS]
STOCK_V8 = Path(ultralytics.__file__).parent / "cfg" / "models" / "v8"


META_SCALES = "mlx"  # built on the meta device: the same modules and shapes without allocating 25-70M weights


def build_layers(name: str) -> nn.Sequential:
    """Build a scaled model YAML's layers, as DetectionModel does (on the meta device for the large scales)."""
    if yaml_model_load(name)["scale"] not in META_SCALES:
        model = DetectionModel(name, verbose=False)
        assert model.stride.tolist() == [8.0, 16.0, 32.0]
        return model.model
    with torch.device("meta"):
        return tasks.parse_model(yaml_model_load(name), ch=3, verbose=False)[0]


@functools.lru_cache(maxsize=None)
def stock_params(scale: str) -> int:
    """Parameter count of the stock YOLOv8 at ``scale`` (built once per scale, shared by the configs)."""
    return sum(p.numel() for p in build_layers(f"yolov8{scale}.yaml").parameters())


def attention_layers(model: nn.Module) -> list[nn.Module]:
    """Return the kit blocks of a model in layer order."""
    return [m for m in model.modules() if isinstance(m, BLOCK_TYPES)]


def input_channels(model: DetectionModel, imgsz: int = 64) -> dict[int, int]:
    """Run a forward pass and return {id(block): channels of the tensor it received}."""
    seen = {}

    def hook(module, inputs):  # returns None: a pre-hook's return value would replace the input
        seen[id(module)] = inputs[0].shape[1]

    hooks = [b.register_forward_pre_hook(hook) for b in attention_layers(model)]
    model.eval()(torch.zeros(1, 3, imgsz, imgsz))
    for h in hooks:
        h.remove()
    return seen


def block_channels(block: nn.Module) -> int:
    """Return the channel count a block was built for (a forward pass checks that its weights fit it)."""
    return block.c1


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("scale", "nslmx")
def test_config_builds_every_scale(cfg, scale):
    """Every ready-made config builds at every scale; parameters = stock + the blocks' own; 4 blocks, right widths."""
    torch.manual_seed(0)
    layers = build_layers(f"yolov8{scale}-{cfg}.yaml")
    blocks = attention_layers(layers)
    assert len(blocks) == 4 and all(type(b) is BLOCKS.get(type(b).__name__) for b in blocks)
    n_blocks = sum(p.numel() for b in blocks for p in b.parameters())
    assert sum(p.numel() for p in layers.parameters()) == stock_params(scale) + n_blocks
    # each block sits after a backbone C2f and is built for that C2f's output width
    for b in blocks:
        prev = layers[b.i - 1]
        assert prev.type.endswith("C2f") and block_channels(b) == prev.cv2.conv.out_channels
    assert [d for d in layers[-1].cv2]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("scale", "ns")
@pytest.mark.parametrize("imgsz", [320, 640])
def test_config_forward(cfg, scale, imgsz):
    """n and s run at 320 and 640 and produce Detect outputs (boxes+classes for every anchor), finite."""
    torch.manual_seed(0)
    model = DetectionModel(f"yolov8{scale}-{cfg}.yaml", nc=10, verbose=False).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, imgsz, imgsz))
    pred = y[0] if isinstance(y, (list, tuple)) else y
    anchors = sum((imgsz // s) ** 2 for s in (8, 16, 32))
    assert pred.shape == (1, 4 + 10, anchors) and torch.isfinite(pred).all()


@pytest.mark.parametrize("cfg", CONFIGS)
def test_info_and_fuse(cfg):
    """model.info() reports FLOPs (the FLOPs probe feeds uninitialised memory: every block survives it); fuse keeps
    outputs."""
    torch.manual_seed(0)
    model = DetectionModel(f"yolov8n-{cfg}.yaml", verbose=False).eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        before = model(x)[0]
        n_layers, n_params, _, flops = model.info(verbose=True)  # verbose=False returns None
        model.fuse(verbose=False)
        after = model(x)[0]
    assert n_params == sum(p.numel() for p in DetectionModel(f"yolov8n-{cfg}.yaml", verbose=False).parameters())
    stock_flops = DetectionModel("yolov8n.yaml", verbose=False).info(verbose=True)[3]  # counted differently per release
    assert flops >= stock_flops > 5.0  # 0 would mean the probe failed
    assert len(attention_layers(model)) == 4 and torch.allclose(before, after, atol=1e-4, rtol=1e-4)


def _custom_yaml(rows_backbone: list, head: list) -> dict:
    return {"nc": 3, "scales": {"n": [0.33, 0.25, 1024], "s": [0.33, 0.5, 1024]}, "scale": "n",
            "backbone": rows_backbone, "head": head}


def _pick(i: int) -> str:
    """The i-th registered kit block name (cycling), so the custom rows cover several kinds of block."""
    return NAMES[i % len(NAMES)]


BACKBONE = [
    [-1, 1, "Conv", [64, 3, 2]],  # 0 P1: 16 ch at n
    [-1, 1, "Conv", [128, 3, 2]],  # 1 P2: 32
    [-1, 1, "C2f", [128, True]],  # 2: 32
    [-1, 1, "Conv", [256, 3, 2]],  # 3 P3: 64
    [2, 6, _pick(2), []],  # 4: from an earlier index, n=6 * depth 0.33 -> Sequential of 2 blocks (32)
    [-2, 1, _pick(0), []],  # 5: negative index -> block(64) on layer 3
    [4, 3, _pick(1), []],  # 6: 32 channels, n=3 (depth-scaled to 1 at n)
    [-1, 1, "Conv", [256, 3, 2]],  # 7 P3/8: 64
    [[-1, 5], 1, "Concat", [1]],  # 8: 64 + 64
    [-1, 1, _pick(3), []],  # 9: block(128) after a Concat
    [-1, 1, "Conv", [512, 3, 2]],  # 10 P4/16: 128
    [-1, 1, _pick(4), []],  # 11: block(128)
    [-1, 1, "Conv", [1024, 3, 2]],  # 12 P5/32: 256
]
HEAD = [[[9, 11, 12], 1, "Detect", ["nc"]]]


@pytest.mark.parametrize("scale,widths", [("n", (32, 64, 32, 128, 128)), ("s", (64, 128, 64, 256, 256))])
def test_custom_rows_from_index_and_repeats(scale, widths):
    """Rows with 'from' as an index, negative index, n > 1 and after a Concat get the right input channels."""
    d = _custom_yaml(BACKBONE, HEAD)
    d["scale"] = scale
    model = DetectionModel(d, verbose=False)
    layers = model.model
    four = BLOCKS.get(_pick(2))
    assert isinstance(layers[4], nn.Sequential) and len(layers[4]) == 2 and all(type(b) is four for b in layers[4])
    assert type(layers[6]) is BLOCKS.get(_pick(1))  # n=3 * depth 0.33 rounds to 1
    built = tuple(block_channels(b) for b in (layers[4][0], layers[5], layers[6], layers[9], layers[11]))
    assert built == widths
    seen = input_channels(model)
    assert all(seen[id(b)] == block_channels(b) for b in attention_layers(model))
    assert [m.f for m in layers][4:7] == [2, -2, 4]
    assert model.model[-1].cv2[0][0].conv.in_channels == widths[3]  # Detect received the block's width for P3


def _bad_rows() -> list:
    """Rows the parser must refuse, with the error type and a pattern of the message, built from the registry."""
    first, second = KIT_BLOCKS[0], KIT_BLOCKS[1]
    listed = re.escape(", ".join(BLOCKS.names()))
    rows = [
        ([-1, 1, first[0] + first[0][-1], []], KeyError, rf"unknown module '{first[0]}{first[0][-1]}'.*Did you mean "
         rf"'{first[0]}'\?.*{listed}"),
        ([-1, 1, second[0].lower(), []], KeyError, rf"Did you mean '{second[0]}'\?"),
        ([-1, 1, "C2F", [64]], KeyError, r"Did you mean 'C2f'\?"),
        ([[-1, 0], 1, first[0], []], ValueError, r"row 2 .*'from' must be one earlier layer.*Concat"),
        ([5, 1, first[0], []], ValueError, r"row 2 .*'from' must be one earlier layer: an index in \[-2, 1\]"),
        ([-1, 0, second[0], []], ValueError, r"row 2 .*repeats must be an integer >= 1"),
        ([-1, 1, first[0], 16], ValueError, r"row 2 .*args must be a list"),
    ]
    for name, cls in KIT_BLOCKS:
        if cls.args:  # a value of the wrong type for the first argument: names the row, block, argument and range
            rows.append(([-1, 1, name, ["yes"]], ValueError, rf"row 2 .*{name}: argument '{cls.args[0].name}' must be"))
        too_many = [*(a.default for a in cls.args), 3, 3]  # too many even if a leading value read as the channels
        rows.append(([-1, 1, name, too_many], ValueError, rf"row 2 .*the arguments {re.escape(cls.signature())}"))
    return rows


@pytest.mark.parametrize("row,error,pattern", _bad_rows())
def test_bad_rows_raise_clear_errors(row, error, pattern):
    """Misspelt names suggest the closest one and list the blocks; bad rows/arguments name the row and the fix."""
    d = _custom_yaml([[-1, 1, "Conv", [64, 3, 2]], [-1, 1, "Conv", [128, 3, 2]], row], [])
    d["head"] = [[[-1], 1, "Detect", ["nc"]]]
    with pytest.raises(error, match=pattern):
        DetectionModel(d, verbose=False)


def test_register_idempotent_and_thread_safe():
    """register() from many threads at once leaves exactly one wrapper and one row class per block."""
    names = [*BLOCKS.names(), *BLOCKS.aliases()]
    before = {name: tasks.__dict__[name] for name in names}
    wrapper = tasks.parse_model
    errors = []

    def worker():
        try:
            yolo_attn.register()
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert tasks.parse_model is wrapper and not hasattr(tasks.parse_model.__wrapped__, "__wrapped__")
    assert all(tasks.__dict__[name] is before[name] for name in names)
    for name, cls in KIT_BLOCKS:  # how Ultralytics names the layer type: the block's import path
        assert str(getattr(tasks, name))[8:-2] == f"{cls.__module__}.{cls.__qualname__}"


def test_registering_a_user_block():
    """A user block added to the registry becomes usable in YAML after register() (and is removable)."""

    class Gate(nn.Module):
        def __init__(self, c1, scale=1.0):
            super().__init__()
            self.w = nn.Parameter(torch.full((c1,), float(scale)))

        def forward(self, x):
            return x * self.w[:, None, None]

    BLOCKS.register(Gate, "TestGate")
    try:
        yolo_attn.register()
        d = _custom_yaml([[-1, 1, "Conv", [64, 3, 2]], [-1, 1, "TestGate", [0.5]]], [[[-1], 1, "Detect", ["nc"]]])
        model = DetectionModel(d, verbose=False)
        assert model.model[1].w.shape == (16,) and model.model[1].w[0].item() == 0.5
    finally:
        BLOCKS._items.pop("TestGate")
        delattr(tasks, "TestGate")


def test_version_guard():
    """Versions outside the range, or a parser of another shape, fail loudly naming installed and supported versions."""
    with pytest.raises(UnsupportedUltralyticsError, match=r"ultralytics 8\.2\.103 is installed.*>=8\.3\.0,<8\.5\.0"):
        check_ultralytics(tasks, "8.2.103")
    with pytest.raises(UnsupportedUltralyticsError, match=r"ultralytics 9\.0\.1 is installed"):
        check_ultralytics(tasks, "9.0.1")

    class FakeTasks:
        @staticmethod
        def parse_model(d, ch, verbose=True):
            return {"Conv": d}[d](ch)

    with pytest.raises(UnsupportedUltralyticsError, match=r"8\.4\.190.*no longer has the shape"):
        check_ultralytics(FakeTasks, "8.4.190")
    check_ultralytics(tasks, ultralytics.__version__)  # the installed one passes


def test_configs_by_file_name(tmp_path, monkeypatch):
    """'yolov8n-<block>.yaml' resolves from any directory through the Python API; a local file of that name wins."""
    (a, _), (b, cls_b) = KIT_BLOCKS[0], KIT_BLOCKS[1]
    monkeypatch.chdir(tmp_path)
    model = YOLO(f"yolov8n-{a.lower()}.yaml")
    assert len(attention_layers(model.model)) == 4 and model.model.yaml["scale"] == "n"
    d = yaml.safe_load((yolo_attn.cfg_dir() / f"yolov8-{a.lower()}.yaml").read_text())
    d["backbone"] = [[f, n, b, []] if m == a else [f, n, m, args] for f, n, m, args in d["backbone"]]
    (tmp_path / f"yolov8-{a.lower()}.yaml").write_text(yaml.safe_dump(d))  # the local file: the other block
    assert all(type(x) is cls_b for x in attention_layers(YOLO(f"yolov8n-{a.lower()}.yaml").model))


def _stock_snapshot_code(out: Path, kit: bool) -> str:
    return f"""
import torch, re
from pathlib import Path
{'import yolo_attn' if kit else ''}
import sys
assert ('yolo_attn' in sys.modules) == {kit}
import ultralytics
from ultralytics import YOLO
from ultralytics.nn.tasks import guess_model_task, yaml_model_load
root = Path(ultralytics.__file__).parent / 'cfg' / 'models' / 'v8'
snap = {{}}
x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
for p in sorted(root.glob('*.yaml')):
    if guess_model_task(yaml_model_load(p)) != 'detect':
        continue
    name = re.sub(r'(v8)', r'\\1n', p.name, count=1)  # scale n
    torch.manual_seed(0)
    model = YOLO(name).model.eval()
    try:
        with torch.no_grad():
            y = model(x)
        out = y[0] if isinstance(y, (list, tuple)) else y
    except Exception as e:
        out = type(e).__name__ + ': ' + str(e)
    snap[p.name] = (sum(q.numel() for q in model.parameters()), model.state_dict(), out)
torch.save(snap, {str(out)!r})
"""


def test_stock_models_untouched(tmp_path, env_subprocess):
    """With the kit imported, every stock v8 detect YAML builds the same parameters, weights and outputs as without."""
    results = {}
    for kit in (False, True):
        out = tmp_path / f"snap-{kit}.pt"
        proc = run_python(_stock_snapshot_code(out, kit), env_subprocess, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[kit] = torch.load(out, weights_only=False)
    without, with_kit = results[False], results[True]
    assert sorted(without) == sorted(with_kit) and {"yolov8.yaml", "yolov8-p2.yaml", "yolov8-p6.yaml"} <= set(without)
    for name, (n, sd, out) in without.items():
        n2, sd2, out2 = with_kit[name]
        assert n == n2, name
        assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd), name
        if isinstance(out, str):
            assert out == out2, name
        else:
            assert torch.equal(out, out2), name
