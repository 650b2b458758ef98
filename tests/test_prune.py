"""Structured channel pruning: function preservation, rebuild from the YAML, fresh-process reload, fine-tuning with
the stock ``yolo`` command, ONNX parity and size, bad input.

Function preservation is the pruner's correctness criterion: the pruned network must compute exactly what the
unpruned one computes once the removed channels are silenced, i.e. once the weight and bias of the BatchNorms that
produce them are zeroed (act(0) = 0 for every activation in these models, so a silenced channel carries zeros through
residual sums, concatenations, pooling and attention gates). The reference is built here from the unpruned network.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
import yaml
from conftest import CONFIGS, ROOT, run_python
from ultralytics import YOLO
from ultralytics.nn.tasks import ClassificationModel, DetectionModel

from yolo_attn import AttentionGate, prune
from yolo_attn.cli import main
from yolo_attn.slim import SLIM_KEY, SlimError, analyse, prune_network, removed_bn_channels

pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:ONNX export mode is set to TrainingMode.EVAL:UserWarning"),
]

RATIO = 0.3
TOL = 1e-4  # on head outputs, relative to max(1, |value|): box coordinates are pixels (float32 steps of ~1e-5 there)
INEXACT_BOUND = 0.05  # blocks with prune_exact False (a gate normalised over all channels): measured change bound
STOCK = ["yolov8n.yaml", "yolov8n-seg.yaml", "yolo11n.yaml"]
FAMILIES = ["yolov8-seg", "yolov8-pose", "yolov8-obb", "yolov8-cls", "yolo11"]  # besides yolov8 (detect)


def scaled(stem: str) -> str:
    """Return the scale-n name of a config stem: ``yolov8-seg-nam`` -> ``yolov8n-seg-nam.yaml``."""
    return f"{stem[:6]}n{stem[6:]}.yaml"


# default run: every kit block's detection config; slow: each block once more, in another task (rotating), so every
# block meets every head over the blocks, plus the stock pose, obb and cls models
KIT_DETECT = [scaled(f"yolov8-{c}") for c in CONFIGS if (ROOT / "cfg" / f"yolov8-{c}.yaml").is_file()]
KIT_ROTATED = [
    scaled(f"{FAMILIES[i % len(FAMILIES)]}-{c}")
    for i, c in enumerate(CONFIGS)
    if (ROOT / "cfg" / f"{FAMILIES[i % len(FAMILIES)]}-{c}.yaml").is_file()
]

def sparse_bn(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm random statistics and |gamma| spread over decades, as after sparsity training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                sign = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
                m.weight.copy_(10 ** (torch.rand(n, generator=g) * 3 - 3) * sign)  # |gamma| in [1e-3, 1]
                m.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)


def head_tensors(y) -> list[torch.Tensor]:
    """Flatten a model's eval output into its head tensors (the head's input feature maps excluded)."""
    if isinstance(y, torch.Tensor):
        return [y]
    if isinstance(y, dict):
        return [t for k, v in y.items() if k != "feats" for t in head_tensors(v)]
    if isinstance(y, (list, tuple)):
        return [t for v in y for t in head_tensors(v)]
    return []


def max_rel_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Return max |a - b| / max(1, |a|) over matching head tensors (shapes must match)."""
    assert [t.shape for t in a] == [t.shape for t in b]
    return max(float(((x - y).abs() / x.abs().clamp_min(1)).max()) for x, y in zip(a, b))


def params(model: nn.Module) -> int:
    """Return the parameter count."""
    return sum(p.numel() for p in model.parameters())


def check_preserved(cfg: str) -> None:
    """Prune ``cfg`` at RATIO and compare with the unpruned model whose removed channels' BN weight and bias are 0."""
    torch.manual_seed(0)
    net = YOLO(cfg).model
    sparse_bn(net)
    net.eval()
    pruned, reference = copy.deepcopy(net), copy.deepcopy(net)
    graph, plan = prune_network(pruned, RATIO)
    modules = dict(reference.named_modules())
    with torch.no_grad():
        for name, idx in removed_bn_channels(graph, plan).items():
            modules[name].weight[idx] = 0
            modules[name].bias[idx] = 0
        size = 32 if isinstance(net, ClassificationModel) else 64
        x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
        want, got, dense = (head_tensors(m.eval()(x)) for m in (reference, pruned, net))
    assert params(pruned) < 0.8 * params(net), "30% of the channels gone should remove well over 20% of the weights"
    assert max_rel_diff(dense, want) > 1e-2, "the removed channels must matter, or the comparison proves nothing"
    exact = all(getattr(m, "prune_exact", True) for m in net.modules() if isinstance(m, AttentionGate))
    diff = max_rel_diff(want, got)
    if exact:
        assert diff < TOL, f"{cfg}: pruned output differs from the silenced reference by {diff:.2e}"
    else:  # e.g. a gate normalised over all channels: fewer channels change the kept gates
        assert diff < INEXACT_BOUND, f"{cfg}: inexact block changed the output by {diff:.2e}"


@pytest.mark.parametrize("cfg", STOCK + KIT_DETECT)
def test_function_preserved(cfg):
    """Stock YOLOv8n/-seg, YOLO11n and every kit block's YOLOv8n: pruned output == silenced unpruned output
    (bounded for blocks that declare ``prune_exact = False``)."""
    check_preserved(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("cfg", KIT_ROTATED + ["yolov8n-pose.yaml", "yolov8n-obb.yaml", "yolov8n-cls.yaml"])
def test_function_preserved_other_tasks(cfg):
    """Each kit block in a seg, pose, obb, cls or YOLO11 config, and the stock pose, obb and cls models."""
    check_preserved(cfg)


def test_gate_without_prune_hook_pins_its_channels():
    """A block that cannot slice itself keeps its channels (and those of every layer tied to them) whole."""

    class Fixed(AttentionGate):  # a user block without prune_channels
        def gate(self, x):
            return torch.sigmoid(x.mean((2, 3), keepdim=True))

    net = YOLO("yolov8n-simam.yaml").model
    sparse_bn(net)
    i = next(i for i, m in enumerate(net.model) if isinstance(m, AttentionGate))
    old = net.model[i]
    fixed = Fixed(old.c1)
    fixed.f, fixed.i, fixed.type, fixed.np = old.f, old.i, "Fixed", 0
    net.model[i] = fixed
    width = net.model[i - 1].cv2.conv.out_channels
    graph, _ = prune_network(net, 0.5)
    assert net.model[i - 1].cv2.conv.out_channels == width
    assert any(g.pinned.startswith("Fixed") for g in graph.groups)


def test_rebuild_from_yaml_keeps_pruned_widths():
    """Building the model again from its YAML (what the trainer does) gives the pruned shapes; load() takes all."""
    for cfg, cls in (("yolov8n-nam.yaml", DetectionModel), ("yolov8n-cls.yaml", ClassificationModel)):
        net = YOLO(cfg).model
        sparse_bn(net)
        prune_network(net, RATIO)
        assert SLIM_KEY in net.yaml
        fresh = cls(copy.deepcopy(net.yaml), verbose=False)
        assert {k: v.shape for k, v in fresh.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
        bad = copy.deepcopy(net.yaml)
        bad[SLIM_KEY]["model.99.cv1"] = [8, 64]
        with pytest.raises(SlimError, match="model.99.cv1"):
            cls(bad, verbose=False)


@pytest.fixture(scope="module")
def pruned_pt(tmp_path_factory, tiny_data):
    """A 10-class YOLOv8n (the tiny dataset's classes) with sparse BN scales, pruned by the CLI to pruned.pt."""
    d = tmp_path_factory.mktemp("prune")
    model = YOLO("yolov8n.yaml")
    model.model = DetectionModel({**model.model.yaml, "nc": 10}, verbose=False)
    sparse_bn(model.model)
    model.save(d / "dense.pt")
    return d


def test_cli_prune_reload_and_fine_tune(pruned_pt, tiny_data, env_subprocess, capsys):
    """`yolo-attn prune` reports and saves; a fresh process loads and predicts; `yolo train model=pruned.pt`
    trains the pruned network, and its last.pt/best.pt reload with the same parameter count."""
    d = pruned_pt
    main(["prune", f"model={d / 'dense.pt'}", f"ratio={RATIO}", f"out={d / 'pruned.pt'}", "imgsz=64"])
    text = capsys.readouterr().out
    assert "params" in text and "GFLOPs" in text and "C2f" in text and (d / "pruned.pt").is_file()
    n_dense, n_pruned = params(YOLO(d / "dense.pt").model), params(YOLO(d / "pruned.pt").model)
    assert f"{n_dense:,} -> {n_pruned:,}" in text and n_pruned < 0.7 * n_dense
    image = next((Path(yaml.safe_load(tiny_data.read_text())["path"]) / "images" / "val").glob("*"))
    code = f"""
import json, subprocess, sys
from ultralytics import YOLO
m = YOLO({str(d / 'pruned.pt')!r})
m.predict({str(image)!r}, imgsz=64, verbose=False)
subprocess.run(["yolo", "train", "model={d / 'pruned.pt'}", "data={tiny_data}", "epochs=1", "imgsz=64", "batch=4",
                "workers=0", "project={d / 'runs'}", "name=ft", "plots=False"], check=True,
               stdout=subprocess.DEVNULL)
w = {str(d / 'runs' / 'ft' / 'weights')!r}
print(json.dumps([sum(p.numel() for p in m.model.parameters())] +
                 [sum(p.numel() for p in YOLO(f"{{w}}/{{f}}").model.parameters()) for f in ("last.pt", "best.pt")]))
"""
    r = run_python(code, env_subprocess, cwd=d, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [n_pruned] * 3


@pytest.mark.slow
def test_interrupted_fine_tune_resumes_pruned(pruned_pt, tiny_data):
    """An interrupted fine-tune of a pruned model resumes (resume=True) with the pruned network."""
    d = pruned_pt
    if not (d / "pruned.pt").is_file():
        prune(d / "dense.pt", ratio=RATIO, out=d / "pruned.pt", imgsz=64)
    n_pruned = params(YOLO(d / "pruned.pt").model)
    model = YOLO(d / "pruned.pt")

    def interrupt(trainer):
        if trainer.epoch == 0:
            raise KeyboardInterrupt("interrupted after the first epoch")

    model.add_callback("on_model_save", interrupt)
    run = dict(data=str(tiny_data), imgsz=64, batch=4, workers=0, plots=False, val=False, project=str(d / "runs"))
    with pytest.raises(KeyboardInterrupt):
        model.train(epochs=2, name="resume", exist_ok=True, **run)
    last = d / "runs" / "resume" / "weights" / "last.pt"
    assert torch.load(last, weights_only=False)["optimizer"] is not None  # a run to resume, not a finished one
    YOLO(last).train(resume=True)
    assert params(YOLO(last).model) == n_pruned


def test_onnx_export_matches_and_is_smaller(pruned_pt, tmp_path):
    """The pruned model exports to ONNX; onnxruntime matches PyTorch; the file shrinks with the parameters."""
    d = pruned_pt
    if not (d / "pruned.pt").is_file():
        prune(d / "dense.pt", ratio=RATIO, out=d / "pruned.pt", imgsz=64)
    sizes = {}
    for name in ("dense", "pruned"):
        model = YOLO(d / f"{name}.pt")
        f = Path(model.export(format="onnx", imgsz=64, simplify=False))
        sizes[name] = f.stat().st_size
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            want = model.model.float().fuse().eval()(x)[0].numpy()
        got = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
        assert abs(got - want).max() < 1e-3
    ratio = params(YOLO(d / "pruned.pt").model) / params(YOLO(d / "dense.pt").model)
    assert sizes["pruned"] < (ratio + 0.05) * sizes["dense"]


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"ratio": 0}, "ratio must be a number in \\(0, 1\\)"),
        ({"ratio": 1.0}, "ratio must be a number in \\(0, 1\\)"),
        ({"ratio": True}, "ratio must be"),
        ({"ratio": 0.3, "round": 0}, "round must be an integer >= 1"),
        ({"ratio": 0.3, "min_channels": -1}, "min_channels must be"),
        ({"ratio": 0.3, "out": "pruned.onnx"}, "out must be a .pt file"),
        ({"ratio": 0.01}, "removes no channel"),
    ],
)
def test_bad_input_writes_nothing(kwargs, error, tmp_path):
    """Impossible requests raise a clear SlimError and write nothing."""
    out = tmp_path / "p.pt"
    kwargs = {"out": out, **kwargs}
    kwargs["out"] = tmp_path / kwargs["out"]
    with pytest.raises(SlimError, match=error):
        prune("yolov8n.yaml", **kwargs)
    assert not list(tmp_path.iterdir())


def test_nothing_prunable_and_missing_model(tmp_path):
    """A fused model (no BatchNorm scales left) has nothing to prune; a missing checkpoint is named."""
    model = YOLO("yolov8n.yaml")
    model.model.fuse()
    with pytest.raises(SlimError, match="nothing to prune"):
        prune(model, ratio=0.3, out=tmp_path / "p.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        prune(tmp_path / "missing.pt", ratio=0.3, out=tmp_path / "p.pt")
    with pytest.raises(SystemExit, match="yolo-attn prune: ratio must be a number in"):
        main(["prune", "model=yolov8n.yaml", "ratio=1.5", f"out={tmp_path / 'p.pt'}"])
    with pytest.raises(SystemExit, match="missing out"):
        main(["prune", "model=yolov8n.yaml", "ratio=0.3"])
    assert not list(tmp_path.iterdir())


def test_analysis_covers_known_blocks():
    """Every layer of the stock and kit models is understood (none left intact), and head outputs are pinned."""
    for cfg in ("yolo11n-seg.yaml", "yolov8n-das.yaml"):
        net = YOLO(cfg).model
        graph = analyse(net.model)
        assert not [k for k in graph.layers if "intact" in k]
        head = net.model[-1]
        final = {id(seq[-1]) for attr in ("cv2", "cv3", "cv4") for seq in getattr(head, attr, [])}
        assert not any(s.role == "out" and id(s.module) in final for s in graph.slots)
