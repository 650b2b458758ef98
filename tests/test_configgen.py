"""Config generator: every stock v8/11 YAML x block x placement is the stock model plus the blocks; shipped configs."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch
import ultralytics
import yaml
from conftest import ROOT
from ultralytics import YOLO
from ultralytics.nn import tasks

from yolo_attn import BLOCKS, Arg, AttentionGate
from yolo_attn.cli import main
from yolo_attn.configgen import PLACEMENTS, make_config, placement_rows, render_config

STOCK_ROOT = Path(ultralytics.__file__).parent / "cfg" / "models"
STOCK = sorted(p.name for folder in ("v8", "11") for p in (STOCK_ROOT / folder).glob("*.yaml"))
BLOCK_NAMES = tuple(BLOCKS.names())
STOCK_BLOCKS = [(name, BLOCK_NAMES[i % len(BLOCK_NAMES)]) for i, name in enumerate(STOCK)]  # every block, in turn
HEADS = {  # output row module -> the model class Ultralytics builds for it
    "Detect": tasks.DetectionModel,
    "Segment": tasks.SegmentationModel,
    "Pose": tasks.PoseModel,
    "OBB": tasks.OBBModel,
    "Classify": tasks.ClassificationModel,
    "RTDETRDecoder": tasks.RTDETRDetectionModel,
    "WorldDetect": tasks.WorldModel,
    "YOLOEDetect": tasks.YOLOEModel,
    "YOLOESegment": tasks.YOLOESegModel,
}
TASKS = {
    "seg": ("segment", "Segment"),
    "pose": ("pose", "Pose"),
    "obb": ("obb", "OBB"),
    "cls": ("classify", "Classify"),
}


@pytest.fixture(scope="module", autouse=True)
def build_settings(tmp_path_factory):
    """One thread (the suite shares 2 cores; oversubscribed builds are ~10x slower); torch hub in a temp dir.

    yolo11-cls-resnet18.yaml asks torchvision for pretrained weights, which creates the hub directory first.
    """
    threads, hub = torch.get_num_threads(), os.environ.get("TORCH_HOME")
    torch.set_num_threads(1)
    os.environ["TORCH_HOME"] = str(tmp_path_factory.mktemp("torch-home"))
    yield
    torch.set_num_threads(threads)
    if hub is None:
        os.environ.pop("TORCH_HOME")
    else:
        os.environ["TORCH_HOME"] = hub


def rows_of(cfg: dict) -> list[list]:
    """Return backbone + head rows."""
    return cfg["backbone"] + cfg["head"]


def absolute(i: int, f: int | list) -> list[int]:
    """Return the absolute indices row ``i`` reads."""
    return [x if x >= 0 or i == 0 else i + x for x in (f if isinstance(f, list) else [f])]


def summary(model: torch.nn.Module) -> tuple[int, dict[int, int], str]:
    """Return (parameters, {layer: output channels}, output shapes) of a model after a 64 px forward pass."""
    channels = {}
    hooks = [
        layer.register_forward_hook(
            lambda m, x, y, i=i: channels.__setitem__(i, y.shape[1] if torch.is_tensor(y) else None)
        )
        for i, layer in enumerate(model.model)
    ]
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    return sum(p.numel() for p in model.parameters()), channels, json.dumps(shapes_of(out))


def shapes_of(out: object) -> object:
    """Return the nested shapes of a model output (tensors inside lists, tuples and dicts)."""
    if torch.is_tensor(out):
        return list(out.shape)
    if isinstance(out, dict):
        return {k: shapes_of(v) for k, v in out.items()}
    return [shapes_of(v) for v in out] if isinstance(out, (list, tuple)) else None


_builds: dict[str, tuple | Exception] = {}


def build(cfg: dict) -> tuple[int, dict[int, int], str] | Exception:
    """Build ``cfg`` at scale n with its head's model class and summarise it; errors are returned (cached by config)."""
    key = json.dumps(cfg, sort_keys=True, default=str)
    if key not in _builds:
        try:
            model = HEADS[cfg["head"][-1][2]]({**copy.deepcopy(cfg), "scale": "n"}, verbose=False)
            _builds[key] = summary(model)
        except Exception as e:  # reported as the skip reason of a stock model
            _builds[key] = e
    return _builds[key]


@functools.lru_cache(maxsize=None)
def stock_cfg(name: str) -> dict:
    """Return a stock YAML as a dict."""
    return yaml.safe_load(next(STOCK_ROOT.rglob(name)).read_text())


@functools.lru_cache(maxsize=None)
def block_params(block: str, channels: int) -> int:
    """Return the parameters of one block built standalone for ``channels``."""
    return sum(p.numel() for p in BLOCKS.get(block)(channels).parameters())


def strip_attention(cfg: dict, block: str) -> tuple[dict[int, int], list[int]]:
    """Map generated rows to stock rows ({generated: stock index}; an attention row maps to the row it follows)."""
    old, attention, kept = {}, [], -1
    for i, row in enumerate(rows_of(cfg)):
        if row[2] == block:
            attention.append(i)
        else:
            kept += 1
        old[i] = kept
    return old, attention


@pytest.mark.parametrize("at", PLACEMENTS)
@pytest.mark.parametrize("name, block", STOCK_BLOCKS)
def test_every_stock_yaml(name, block, at):
    """Stock model + attention rows only: same rows and references once removed; builds; params = stock + blocks.

    The generator knows no block, so each stock YAML is paired with one registered block, taking them in turn."""
    ref = build(stock_cfg(name))
    if isinstance(ref, Exception):
        pytest.skip(f"stock {name} does not build here: {type(ref).__name__}: {str(ref)[:200]}")
    stock = rows_of(stock_cfg(name))
    cfg = make_config(name, block, at=at)
    rows = rows_of(cfg)
    old, attention = strip_attention(cfg, block)
    assert len(cfg["backbone"]) - sum(old[a] < len(stock_cfg(name)["backbone"]) for a in attention) == len(
        stock_cfg(name)["backbone"]
    )
    for i, row in enumerate(rows):
        if i in attention:
            assert row[:2] == [-1, 1] and old[i] >= 0
            continue
        j = old[i]
        assert row[1:] == stock[j][1:], (i, row, stock[j])
        assert [old[x] if x >= 0 else x for x in absolute(i, row[0])] == absolute(j, stock[j][0]), (i, row, stock[j])
    after = [old[a] for a in attention]
    head_inputs = set(absolute(len(stock) - 1, stock[-1][0]))
    assert len(set(after)) == len(after) > 0
    if at == "backbone":
        assert all(k < len(stock_cfg(name)["backbone"]) for k in after)
    else:
        backbone = set() if at == "neck" else set(placement_rows(name, "backbone"))
        assert set(after) == head_inputs | backbone
    for key, value in BLOCKS.get(block).config_params.items():  # the block's declared config keys
        assert cfg[key] == stock_cfg(name).get(key, value)

    params, _, shapes = build(cfg)
    stock_params, channels, stock_shapes = ref
    assert params == stock_params + sum(block_params(block, channels[k]) for k in after)
    assert shapes == stock_shapes


@pytest.mark.parametrize(
    "name, backbone",
    [
        ("yolov8.yaml", [2, 4, 6, 8]),  # the C2f ending each stage P2-P5; not the stem Conv, not SPPF
        ("yolov8-p6.yaml", [2, 4, 6, 8, 10]),
        ("yolo11.yaml", [2, 4, 6, 8]),  # SPPF and C2PSA tail: none
        ("yolov8-cls-resnet50.yaml", [1, 2, 3, 4]),  # the four residual stages after the stem
    ],
)
def test_named_placements(name, backbone):
    """The documented placements: backbone = last block of each stage, neck = the head's inputs, all = both."""
    head = rows_of(stock_cfg(name))[-1]
    neck = sorted(set(absolute(len(rows_of(stock_cfg(name))) - 1, head[0])))
    assert list(placement_rows(name, "backbone")) == backbone
    assert list(placement_rows(name, "neck")) == neck
    assert list(placement_rows(name, "all")) == sorted(set(backbone + neck))
    assert list(placement_rows(name, "backbone,3")) == sorted(set(backbone + [3]))


EDGE_BASE = """\
nc: 2
backbone:
  - [-1, 1, Conv, [16, 3, 2]] # 0-P1/2
  - [-1, 1, Conv, [32, 3, 2]] # 1-P2/4
  - [-1, 2, C2f, [32, True]] # 2
  - [-1, 1, Conv, [64, 3, 2]] # 3-P3/8
  - [-1, 2, C2f, [64, True]] # 4
  - [-1, 1, Conv, [128, 3, 2]] # 5-P4/16
  - [-2, 1, Conv, [128, 3, 2]] # 6 reads 4
  - [[-1, 5], 1, Concat, [1]] # 7
head:
  - [-1, 2, C2f, [128]] # 8
  - [[4, -1], 1, Detect, [nc]] # 9 Detect(P3, P4)
"""


def test_insertion_rewrites_every_reference(tmp_path):
    """-1, a -2 offset, absolute indices, a Concat list and the head's list all follow; n > 1 rows keep n."""
    base = tmp_path / "edge.yaml"
    base.write_text(EDGE_BASE)
    block = BLOCK_NAMES[0]
    cfg = make_config(base, block, at="4,5,7", args=[], out=tmp_path / "edge-attn.yaml")
    assert cfg["backbone"] == [
        [-1, 1, "Conv", [16, 3, 2]],
        [-1, 1, "Conv", [32, 3, 2]],
        [-1, 2, "C2f", [32, True]],
        [-1, 1, "Conv", [64, 3, 2]],
        [-1, 2, "C2f", [64, True]],
        [-1, 1, block, []],  # 5 after 4
        [-1, 1, "Conv", [128, 3, 2]],
        [-1, 1, block, []],  # 7 after the old 5
        [-3, 1, "Conv", [128, 3, 2]],  # still reads the old 4, now through its attention row
        [[-1, 7], 1, "Concat", [1]],
        [-1, 1, block, []],
    ]
    assert cfg["head"] == [[-1, 2, "C2f", [128]], [[5, -1], 1, "Detect", ["nc"]]]
    assert make_config(base, block, at=[7, 4, 5], args=[]) == cfg  # the Python API takes a list, in any order
    assert yaml.safe_load((tmp_path / "edge-attn.yaml").read_text()) == cfg
    assert list(placement_rows(base, "backbone")) == [2, 4] and list(placement_rows(base, "neck")) == [4, 8]
    stock_params, channels, _ = build({**yaml.safe_load(EDGE_BASE)})
    params, _, _ = build(cfg)
    assert params == stock_params + sum(block_params(block, channels[k]) for k in (4, 5, 7))
    text = (tmp_path / "edge-attn.yaml").read_text()
    assert "  - [-3, 1, Conv, [128, 3, 2]] # 8 reads 4\n" in text and "# 6-P4/16\n" in text  # comments renumbered


@pytest.mark.parametrize("block", BLOCK_NAMES)
def test_reproduces_handwritten_configs(block):
    """at=backbone on yolov8.yaml gives the hand-written cfg/yolov8-<block>.yaml: same rows, line for line."""
    path = ROOT / "cfg" / f"yolov8-{block.lower()}.yaml"
    hand = yaml.safe_load(path.read_text())
    args = next(r[3] for r in hand["backbone"] if r[2] == block)
    text = render_config("yolov8.yaml", block, at="backbone", args=args or None)
    generated = yaml.safe_load(text)
    assert generated == hand
    row_lines = [line for line in text.splitlines() if line.startswith("  - ")]
    assert row_lines == [line for line in path.read_text().splitlines() if line.startswith("  - ")]


def _script():
    """Import scripts/make_configs.py."""
    spec = importlib.util.spec_from_file_location("make_configs", ROOT / "scripts" / "make_configs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_configs_current():
    """The generated ready-made configs equal fresh generator output (rerun scripts/make_configs.py if not)."""
    expected = _script().expected()
    configs = {p for p in expected if p.suffix == ".yaml"}
    assert len(configs) >= 5 * len(BLOCKS)  # at least the seg/pose/obb/cls/YOLO11 set of every block
    shipped = {p for p in (ROOT / "cfg").glob("*.yaml") if "# Generated by: yolo-attn make-config" in p.read_text()}
    assert shipped == configs, "cfg/ holds generated configs the script does not produce (or misses some)"
    stale = [p.name for p, text in expected.items() if p.read_text() != text]
    assert not stale, f"stale: {stale}; run python scripts/make_configs.py"


@pytest.mark.parametrize("block", BLOCK_NAMES)
def test_shipped_configs_build(block):
    """Each shipped config builds by scaled file name with the right task head and one block per backbone stage."""
    for stem in ("yolov8-seg", "yolov8-pose", "yolov8-obb", "yolov8-cls", "yolo11"):
        scaled = stem.replace("yolov8", "yolov8n").replace("yolo11", "yolo11n") + f"-{block.lower()}.yaml"
        model = YOLO(scaled)
        task, head = TASKS.get(stem.split("-")[-1], ("detect", "Detect"))
        assert model.task == task and type(model.model.model[-1]).__name__ == head, scaled
        assert model.model.yaml["scale"] == "n"
        assert sum(type(m).__name__ == block for m in model.model.modules()) == 4, scaled


class _Probe(AttentionGate):
    """A block outside the kit that declares generated-config defaults."""

    args = (Arg("k", 3, kind="int", low=1, odd=True), Arg("w", 0.5, low=0.0, high=1.0))
    config_args = (5,)
    config_params = {"probe_weight": 2.5e-5, "probe_mode": "soft"}
    config_docs = {"probe_weight": "how strongly the probe pulls"}

    def __init__(self, c1: int, k: int = 3, w: float = 0.5):
        super().__init__(c1)
        self.k, self.w = self.checked(k=k, w=w)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x.mean(1, keepdim=True) * self.w)


@pytest.fixture
def probe(monkeypatch) -> type[AttentionGate]:
    """Register ``_Probe`` (alias ``ProbeAttention``) for one test; the generator must handle it like any block."""
    monkeypatch.setitem(BLOCKS._items, "Probe", _Probe)
    monkeypatch.setitem(BLOCKS._aliases, "ProbeAttention", "Probe")
    return _Probe


def test_cli_make_config(tmp_path, capsys, probe):
    """The CLI writes the file, its header names the command, and rerunning that command gives the same file."""
    out = tmp_path / "seg.yaml"
    main(["make-config", "base=yolov8n-seg.yaml", "block=probe", "at=neck,2", "args=7", f"out={out}"])
    assert f"{out}: yolov8n-seg.yaml plus Probe after its rows 2, 15, 18, 21" in capsys.readouterr().out
    text = out.read_text()
    cfg = yaml.safe_load(text)
    assert [r for r in rows_of(cfg) if r[2] == "Probe"] == [[-1, 1, "Probe", [7]]] * 4
    command = next(line for line in text.splitlines() if line.startswith("# Generated by: "))
    assert command == "# Generated by: yolo-attn make-config base=yolov8n-seg.yaml block=Probe at=neck,2 args=[7]"
    assert "# Ultralytics YOLOv8-seg instance segmentation model" in text and "# 0-P1/2" in text
    again = tmp_path / "again.yaml"
    main([*command.split()[4:], f"out={again}"])
    assert again.read_text().replace(again.name, out.name) == text


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"block": "Probbe"}, KeyError, "Did you mean 'Probe'"),
        ({"at": "bakbone"}, ValueError, "Did you mean 'backbone'"),
        ({"at": "2,22"}, ValueError, r"row 22 is out of range: yolov8.yaml has rows 0-22.*Detect"),
        ({"at": "-1"}, ValueError, "row -1 is out of range"),
        ({"base": "yolov8-sge.yaml"}, FileNotFoundError, r"Did you mean [^?]*yolov8-seg\.yaml"),
        ({"args": [4]}, ValueError, r"^Probe: argument 'k' must be an odd integer >= 1, got 4 \(args=\[4\]; Probe takes "
         r"the YAML arguments \[k=3, w=0\.5\]\)$"),
        ({"args": [3, 2]}, ValueError, r"^Probe: argument 'w' must be a number >= 0 and <= 1, got 2"),
        ({"args": [3, 0.5, 1]}, ValueError, r"^Probe: too many arguments args=\[3,0\.5,1\]: Probe takes at most 2"),
        ({"out": "model.txt"}, ValueError, r"must end in \.yaml or \.yml"),
    ],
)
def test_errors(kwargs, error, match, tmp_path, probe):
    """Bad input gets an error naming the problem and the fix; nothing is written."""
    kw = {"base": "yolov8.yaml", "block": "Probe", "at": "backbone", **kwargs}
    kw["out"] = tmp_path / kw.get("out", "model.yaml")
    with pytest.raises(error, match=match):
        make_config(kw.pop("base"), kw.pop("block"), **kw)
    assert not list(tmp_path.iterdir())


def test_block_declarations_drive_the_config(probe):
    """Default args come from config_args, extra keys (with comments) from config_params/config_docs, checks from the
    declared args; an alias names the block. Nothing in the generator knows the block."""
    text = render_config("yolov8.yaml", "probeattention", at="2,4")
    cfg = yaml.safe_load(text)
    assert [r for r in rows_of(cfg) if r[2] == "Probe"] == [[-1, 1, "Probe", [5]]] * 2
    assert cfg["probe_weight"] == 2.5e-5 and cfg["probe_mode"] == "soft"
    assert "\nprobe_weight: 2.5e-5 # how strongly the probe pulls\nprobe_mode: soft\n\n" in text
    assert "# Generated by: yolo-attn make-config base=yolov8.yaml block=Probe at=2,4 args=[5]\n" in text
    assert yaml.safe_load(render_config("yolov8.yaml", "Probe", at="2,4", args=[7, 0.25]))["head"][-1] == cfg["head"][-1]
    with pytest.raises(ValueError, match=r"Probe: argument 'k' must be an odd integer >= 1, got 4 .*\[k=3, w=0.5\]"):
        render_config("yolov8.yaml", "Probe", at="2", args=[4])
    with pytest.raises(ValueError, match=r"Probe: argument 'w' must be a number >= 0 and <= 1, got 2"):
        render_config("yolov8.yaml", "Probe", at="2", args=[3, 2])


def test_cli_errors(tmp_path, probe):
    """CLI errors are one line with the fix, not a traceback."""
    with pytest.raises(SystemExit, match="Did you mean 'Probe'"):
        main(["make-config", "base=yolov8.yaml", "block=Probbe", f"out={tmp_path / 'x.yaml'}"])
    with pytest.raises(SystemExit, match=r"missing out \(out=\.\.\. required\); usage: yolo-attn make-config base="):
        main(["make-config", "base=yolov8.yaml", "block=Probe"])
    assert not list(tmp_path.iterdir())
