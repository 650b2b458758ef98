"""Export: ONNX (opset raised to each block's declared floor) and TorchScript match PyTorch for every config.

Each ready-made config of every registered block is built with random weights made non-trivial (random BatchNorm
statistics and scales, so gates weighted by BN scale factors are not uniform; small random values for the block
parameters that start at zero, such as deformable offsets, so those paths are exercised; class and box biases that
give a spread of scores and boxes a few strides wide), exported at 64 px into a temporary directory, and run on a
real image of the tiny dataset with the same letterboxed input for every backend.
"""

from __future__ import annotations

import logging
import types
from copy import deepcopy
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
import yaml
from conftest import CONFIGS, KIT_BLOCKS
from torchvision.ops import DeformConv2d, deform_conv2d
from ultralytics import YOLO
from ultralytics.data.augment import LetterBox
from ultralytics.engine.exporter import Exporter
from ultralytics.utils import LOGGER

from yolo_attn import BLOCKS, AttentionGate, Registry
from yolo_attn.integration import export as kit_export

pytestmark = [  # expected noise from tracing (shape checks become constants) and PyTorch's legacy ONNX exporter
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning"),  # TorchScript, torch 2.15
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:ONNX export mode is set to TrainingMode.EVAL:UserWarning"),  # InstanceNorm
]

IMGSZ = 64
# Tolerances on the raw head output (1, 4 + 80, 84 anchors): rows 0-3 are box coordinates in pixels (up to ~125 here,
# where float32 values are 7.6e-6 apart), rows 4+ class probabilities. The exported graphs fold BatchNorm into the
# convolutions, which moves pixel coordinates by a few float32 steps against the unfused PyTorch model.
ATOL_BOX_PX = 1e-4  # box coordinates, exported vs unfused PyTorch (ONNX and TorchScript)
ATOL_SCORE = 1e-5  # class probabilities, exported vs unfused PyTorch (ONNX and TorchScript)
ATOL_TS_FUSED = 1e-5  # TorchScript scores vs the fused PyTorch model it traced
ATOL_BOX = 1e-3  # predict: xyxy in pixels of the source image
ATOL_CONF = 1e-5  # predict: confidences


@pytest.fixture(scope="module", autouse=True)
def _installed():
    """Install the export hook (``register()`` does this once wired in; calling it again is a no-op)."""
    kit_export.install_export()


def randomize(model: nn.Module, seed: int = 0) -> None:
    """Give a freshly built model non-trivial BatchNorms, zero-initialised block parameters and class biases."""
    g = torch.Generator().manual_seed(seed)

    def rand(shape, low, high):
        return torch.rand(shape, generator=g) * (high - low) + low

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # every Conv's BN and the blocks' own (scale factors may weight gates)
                n = m.num_features
                sign = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
                m.weight.copy_(rand(n, 0.3, 1.5) * sign)
                m.bias.copy_(rand(n, -0.2, 0.2))
                m.running_mean.copy_(rand(n, -0.2, 0.2))
                m.running_var.copy_(rand(n, 0.5, 2.0))
            if isinstance(m, BLOCKS.classes()):  # parameters a block starts at zero (e.g. deformable offsets)
                for p in m.parameters():
                    if p.dim() > 1 and not p.any():  # offsets of about +-1 px: sampling between pixels
                        p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
                    elif not p.any():
                        p.copy_(rand(p.shape, -0.5, 0.5))
        head = model.model[-1]
        for seq in head.cv3:  # class logits: more weight on the features, spread class biases
            seq[-1].weight.mul_(3.0)
            seq[-1].bias.copy_(torch.randn(seq[-1].bias.shape, generator=g) - 3.0)
        bins = torch.arange(head.reg_max, dtype=torch.float32).repeat(4)
        for seq in head.cv2:  # box distributions: favour short distances, so boxes are a few strides, not the image
            seq[-1].bias.copy_(-0.5 * bins + torch.randn(bins.shape, generator=g) * 0.3)


def first_val_image(data_yaml: Path) -> Path:
    """Return the first validation image of a dataset YAML."""
    d = yaml.safe_load(Path(data_yaml).read_text())
    return sorted((Path(d["path"]) / d["val"]).glob("*.*"))[0]


def letterboxed(image: Path) -> torch.Tensor:
    """Letterbox an image to IMGSZ as Ultralytics does: (1, 3, IMGSZ, IMGSZ) float RGB in [0, 1]."""
    im = LetterBox((IMGSZ, IMGSZ), auto=False)(image=cv2.imread(str(image)))
    im = np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1))  # BGR HWC -> RGB CHW
    return torch.from_numpy(im)[None].float() / 255


def head_output(y) -> torch.Tensor:
    """Return the (B, 4 + nc, anchors) prediction of a detection model's eval-mode output."""
    return y[0] if isinstance(y, (list, tuple)) else y


@pytest.fixture(scope="module", params=CONFIGS)
def exported(request, tiny_data, tmp_path_factory):
    """Build, randomise and export one config to ONNX and TorchScript; keep the PyTorch reference output."""
    cfg = request.param
    out = tmp_path_factory.mktemp(f"export-{cfg}")
    torch.manual_seed(0)
    model = YOLO(f"yolov8n-{cfg}.yaml")
    randomize(model.model)
    image = first_val_image(tiny_data)
    x = letterboxed(image)
    model.model.eval()
    with torch.no_grad():
        ref = head_output(model.model(x))  # the unfused PyTorch model in eval mode
        ref_fused = head_output(deepcopy(model.model).fuse()(x))  # what the exporter traces (Conv+BN folded)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(out)  # a YAML model exports to <yaml name>.<suffix> in the working directory
        onnx_file = Path(model.export(format="onnx", imgsz=IMGSZ)).resolve()
        ts_file = Path(model.export(format="torchscript", imgsz=IMGSZ)).resolve()
    assert onnx_file.parent == out and ts_file.parent == out
    return types.SimpleNamespace(
        cfg=cfg, model=model, image=image, x=x, ref=ref, ref_fused=ref_fused, onnx=onnx_file, ts=ts_file
    )


def max_diffs(y: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """Return the max abs differences of (box coordinates, class scores) between two raw head outputs."""
    d = (torch.as_tensor(y) - ref).abs()
    return float(d[:, :4].max()), float(d[:, 4:].max())


def test_onnx_matches_pytorch(exported):
    """onnxruntime (CPU) on the exported graph gives PyTorch's raw head output on a real image."""
    sess = ort.InferenceSession(str(exported.onnx), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: exported.x.numpy()})
    assert y.shape == tuple(exported.ref.shape) == (1, 84, 84)
    box, score = max_diffs(y, exported.ref)
    print(
        f"\n{exported.cfg}: ONNX vs PyTorch max abs diff: boxes {box:.3g} px "
        f"(max |coordinate| {float(exported.ref[:, :4].abs().max()):.1f}), scores {score:.3g}"
    )
    assert box < ATOL_BOX_PX and score < ATOL_SCORE


def test_onnx_graph_opset(exported):
    """The graph is valid ONNX at the model's opset floor (its blocks' ``export_opset``) or Ultralytics' default."""
    m = onnx.load(str(exported.onnx))
    onnx.checker.check_model(m)
    opset = next(o.version for o in m.opset_import if o.domain in {"", "ai.onnx"})
    floor = kit_export.required_opset(exported.model.model)
    assert floor == next(c.export_opset for n, c in KIT_BLOCKS if n.lower() == exported.cfg)
    assert opset == max(floor, kit_export.default_onnx_opset(onnx))
    n_deform = sum(n.op_type == "DeformConv" for n in m.graph.node)
    assert (n_deform > 0) == kit_export.has_deform_conv(exported.model.model)


def test_onnx_predict_matches_pytorch(exported):
    """``YOLO("model.onnx").predict`` finds the same boxes and classes as the PyTorch model."""
    scores = exported.ref[0, 4:].amax(0).sort(descending=True).values  # best class score of each anchor
    conf = float(scores[19] + scores[20]) / 2  # keep the 20 best anchors before NMS, whatever random weights give
    kw = dict(imgsz=IMGSZ, conf=conf, verbose=False)
    pt = exported.model.predict(exported.image, **kw)[0].boxes
    ox = YOLO(str(exported.onnx), task="detect").predict(exported.image, **kw)[0].boxes
    print(f"\n{exported.cfg}: predict conf={conf:.4f}: {len(pt)} PyTorch boxes, {len(ox)} ONNX boxes")
    assert len(pt) > 0
    assert len(ox) == len(pt)
    top = pt.conf.argsort(descending=True)[:10]
    for i in top.tolist():  # every top-10 PyTorch box has an ONNX box of the same class, place and confidence
        match = (
            (ox.cls == pt.cls[i])
            & ((ox.xyxy - pt.xyxy[i]).abs().amax(1) < ATOL_BOX)
            & ((ox.conf - pt.conf[i]).abs() < ATOL_CONF)
        )
        assert match.any(), f"no ONNX box for {pt.xyxy[i].tolist()} class {int(pt.cls[i])} conf {float(pt.conf[i])}"


def test_torchscript_matches_pytorch(exported):
    """The TorchScript export (torch.jit.load) gives PyTorch's raw head output."""
    ts = torch.jit.load(str(exported.ts), map_location="cpu")
    with torch.no_grad():
        y = head_output(ts(exported.x))
    box, score = max_diffs(y, exported.ref)
    print(f"\n{exported.cfg}: TorchScript vs PyTorch max abs diff: boxes {box:.3g} px, scores {score:.3g}")
    fused_box, fused_score = max_diffs(y, exported.ref_fused)
    assert box < ATOL_BOX_PX and score < ATOL_SCORE
    assert fused_box < ATOL_BOX_PX and fused_score < ATOL_TS_FUSED  # boxes are ~100 px: float32 steps are ~1e-5


def fake_exporter(model: nn.Module, opset: int | None) -> types.SimpleNamespace:
    """The two Exporter attributes the opset hook reads."""
    return types.SimpleNamespace(model=model, args=types.SimpleNamespace(opset=opset))


class _Needs19(AttentionGate):
    """A block that declares ONNX opset 19 (as one built on deformable convolution does)."""

    export_opset = 19

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return x.sigmoid()


class _NeedsNothing(_Needs19):
    """A block that exports at any opset."""

    export_opset = 0


LOCAL = Registry("test block", {"Needs19": _Needs19, "NeedsNothing": _NeedsNothing})


@pytest.mark.parametrize(
    "block, opset, expected",
    [
        (_NeedsNothing, None, None),  # no floor: untouched (Ultralytics picks its default)
        (_NeedsNothing, 12, 12),
        (_Needs19, None, "raised"),  # the default (18 with this torch) is below 19
        (_Needs19, 17, 19),
        (_Needs19, 19, 19),
        (_Needs19, 20, 20),  # already high enough: left alone
        (lambda c: DeformConv2d(c, c, 3, padding=1), 17, 19),  # torchvision's module counts as 19 without a block
    ],
)
def test_opset_hook_rules(block, opset, expected):
    """The hook raises the opset to the model's floor (its blocks' ``export_opset``), only when it is below it."""
    exp = fake_exporter(nn.Sequential(nn.Conv2d(8, 8, 3), block(8)), opset)
    if expected == "raised":
        expected = 19 if kit_export.default_onnx_opset(onnx) < 19 else None
    kit_export.raise_opset(exp, LOCAL)
    assert exp.args.opset == expected


@pytest.mark.parametrize("name, cls", KIT_BLOCKS)
def test_every_block_declares_its_floor(name, cls):
    """Each kit block's model gets exactly its declared floor: the registry, not a list of names, decides."""
    model = nn.Sequential(nn.Conv2d(8, 8, 3), cls(8))
    assert kit_export.required_opset(model) == cls.export_opset
    exp = fake_exporter(model, 11)
    kit_export.raise_opset(exp)
    assert exp.args.opset == max(11, cls.export_opset)


def test_too_old_toolchain_is_a_clear_error(monkeypatch):
    """An onnx or torch that cannot write the required opset gives an error naming the block and what to install."""
    model = nn.Sequential(_Needs19(8))
    monkeypatch.setattr(onnx.defs, "onnx_opset_version", lambda: 18)
    match = r"_Needs19 \(export_opset=19\).*pip install 'onnx>=1\.14'"
    with pytest.raises(kit_export.DeformConvExportError, match=match):
        kit_export.raise_opset(fake_exporter(model, None), LOCAL)
    monkeypatch.undo()
    monkeypatch.setattr(kit_export, "_torch_max_opset", lambda: 18)
    with pytest.raises(kit_export.DeformConvExportError, match=r"pip install 'torch>=2\.1'"):
        kit_export.raise_opset(fake_exporter(model, 17), LOCAL)


def test_install_is_idempotent():
    """Installing again wraps ``export_onnx`` only once and keeps one symbolic registration."""
    hooked = Exporter.export_onnx
    kit_export.install_export()
    kit_export.install_export(Exporter)
    assert Exporter.export_onnx is hooked and hooked._yolo_attn
    assert not getattr(hooked.__wrapped__, "_yolo_attn", False)
    assert kit_export.register_deform_conv_symbolic() is True


class _Deform(nn.Module):
    """torchvision's deform_conv2d with every knob the symbolic maps."""

    def __init__(self, c1: int, c2: int, groups: int, stride: int, pad: int, dil: int, use_mask: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c2, c1 // groups, 3, 3))
        self.bias = nn.Parameter(torch.randn(c2))
        self.stride, self.pad, self.dil, self.use_mask = stride, pad, dil, use_mask

    def forward(self, x, offset, mask):
        mask = mask if self.use_mask else None
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.pad, self.dil, mask)


@pytest.mark.parametrize(
    "groups, offset_groups, stride, pad, dil, use_mask",
    [
        (1, 1, 1, 1, 1, False),
        (1, 1, 1, 1, 1, True),
        (2, 2, 1, 1, 1, False),
        (2, 4, 2, 2, 2, True),
        (1, 1, 2, 0, 1, False),
    ],
)
def test_symbolic_matches_onnxruntime(tmp_path, groups, offset_groups, stride, pad, dil, use_mask):
    """torchvision deform_conv2d -> ONNX DeformConv: same offset/mask layout (checked numerically, not assumed)."""
    torch.manual_seed(0)
    m = _Deform(4, 6, groups, stride, pad, dil, use_mask).eval()
    h = w = 9
    oh, ow = ((s + 2 * pad - dil * 2 - 1) // stride + 1 for s in (h, w))
    x = torch.randn(2, 4, h, w)
    offset = torch.randn(2, 2 * offset_groups * 9, oh, ow) * 2  # large: some samples fall outside the image
    mask = torch.rand(2, offset_groups * 9, oh, ow)
    f = tmp_path / "deform.onnx"
    torch.onnx.export(m, (x, offset, mask), str(f), opset_version=19, dynamo=False, input_names=["x", "offset", "mask"])
    g = onnx.load(str(f))
    onnx.checker.check_model(g, full_check=True)  # includes ONNX shape inference of DeformConv
    assert [n.op_type for n in g.graph.node] == ["DeformConv"]
    sess = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
    feeds = {"x": x, "offset": offset, "mask": mask}
    (y,) = sess.run(None, {i.name: feeds[i.name].numpy() for i in sess.get_inputs()})
    assert [i.name for i in sess.get_inputs()] == ["x", "offset", "mask"][: 2 + use_mask]
    with torch.no_grad():
        assert np.abs(y - m(x, offset, mask).numpy()).max() < 1e-4
