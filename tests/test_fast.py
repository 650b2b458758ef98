"""The fast paths of the blocks equal the plain formulas, and fusing a model folds NAM without changing its output.

The blocks take in-place, allocation-saving paths when autograd is off (``torch.no_grad``/``inference_mode``, as in
``val``, ``predict`` and export), NAM folds its BatchNorm into ``sigmoid(a * x + b)`` once fused, and DAS computes its
deformable convolution by bilinear sampling on the CPU. Each is compared here, with and without autograd, to the
independent references of ``test_modules.py`` (max abs diff <= 1e-5).
"""

from __future__ import annotations

import contextlib
import pickle
from copy import deepcopy

import pytest
import torch
import torch.nn as nn
from test_modules import (
    Channel_Att,
    DASReference,
    das_with_offsets,
    nam_spatial_reference,
    randomise_,
    se_reference,
    simam_reference,
)
from torchvision.ops import deform_conv2d

from yolo_attn.modules import NAM, SE, SimAM

ATOL = 1e-5
GRAD_MODES = {"grad": contextlib.nullcontext, "no_grad": torch.no_grad, "inference": torch.inference_mode}


def nam_with_stats(c: int, spatial: bool = False, seed: int = 0) -> NAM:
    """A NAM with random affine parameters, running statistics and some negative gammas."""
    m = randomise_(NAM(c, spatial=spatial), seed)
    with torch.no_grad():
        m.bn.weight[::3] *= -1
    return m


def randomise_bn_(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm2d of a model (Conv BNs and NAM's) random scales, shifts and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                sign = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
                m.weight.copy_((torch.rand(n, generator=g) + 0.3) * sign)
                m.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)


# ----------------------------------------------------------------------------------------------------------------------
# NAM folding
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("grad", list(GRAD_MODES))
def test_nam_folded_equals_unfused(spatial, grad):
    m = nam_with_stats(24, spatial, seed=1).eval()
    ref = Channel_Att(24).eval()
    ref.bn2.load_state_dict(m.bn.state_dict())
    x = torch.randn(2, 24, 11, 7) * 3 + 0.5
    with torch.no_grad():
        y_unfused, g_unfused = m(x), m.gate(x)
    assert m.fuse() is m and m.fused
    with GRAD_MODES[grad]():
        y, g = m(x), m.gate(x)
        y_ref = ref(x)
        if spatial:
            y_ref = nam_spatial_reference(y_ref, m.spatial.weight, m.spatial.bias, m.spatial.eps)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(y, y_unfused, rtol=0, atol=ATOL)
    torch.testing.assert_close(g, g_unfused, rtol=0, atol=ATOL)  # gate() is the folded gate
    torch.testing.assert_close(y, x * g, rtol=0, atol=1e-6)


def test_nam_fused_state_saved_and_dropped_when_stale():
    """The fold survives pickling (checkpoints, deep copies) but never state dicts, training or new weights."""
    m = nam_with_stats(16, seed=2).eval().fuse()
    x = torch.randn(2, 16, 6, 5)
    with torch.no_grad():
        y = m(x)
    assert set(m.state_dict()) == set(NAM(16).state_dict())  # loads into an unfused NAM, no extra keys
    for clone in (pickle.loads(pickle.dumps(m)), deepcopy(m)):
        assert clone.fused
        with torch.no_grad():
            assert torch.equal(clone(x), y)
    old = pickle.loads(pickle.dumps(m))
    del old._buffers["fold_a"], old._buffers["fold_b"]  # a NAM pickled before folding existed
    assert not old.fused and torch.allclose(old.fuse()(x), y, atol=ATOL)

    # Training drops the fold: batch statistics, updated running stats, gradients to gamma, as the authors' code.
    ref = Channel_Att(16)
    ref.bn2.load_state_dict(m.bn.state_dict())
    m.train(), ref.train()
    assert not m.fused
    xg = x.clone().requires_grad_()
    y_train = m(xg)
    torch.testing.assert_close(y_train, ref(x), rtol=0, atol=ATOL)
    y_train.sum().backward()
    assert m.bn.weight.grad is not None
    m.eval()
    assert not m.fused  # re-fused only on request
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref.eval()(x), rtol=0, atol=ATOL)

    # Fused while in training mode (Ultralytics fuses freshly built models), then run in training mode: dropped.
    fresh = nam_with_stats(16, seed=2).train().fuse()
    assert fresh.fused
    fresh(x)
    assert not fresh.fused
    # New weights after fusing: the fold is dropped, the new weights are used.
    m.eval().fuse()
    other = nam_with_stats(16, seed=3).eval()
    m.load_state_dict(other.state_dict())
    assert not m.fused
    with torch.no_grad():
        torch.testing.assert_close(m(x), other(x), rtol=0, atol=0)


def test_nam_fused_half_precision():
    m = nam_with_stats(32, seed=4).eval()
    x = torch.randn(2, 32, 20, 20) * 4
    with torch.no_grad():
        y32 = m(x.half().float())
        m16 = deepcopy(m).half().fuse()
        try:
            y16 = m16(x.half())
        except (RuntimeError, NotImplementedError) as e:  # some CPU builds lack float16 kernels
            pytest.skip(f"float16 op not supported here: {e}")
    assert y16.dtype == torch.float16 and m16.fold_a.dtype == torch.float16
    torch.testing.assert_close(y16.float(), y32, rtol=1e-2, atol=2e-2)


# ----------------------------------------------------------------------------------------------------------------------
# Ultralytics fuse(): folded in every inference path, same output
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nam_model():
    """A YOLOv8n-NAM DetectionModel (10 classes) with random BatchNorms, in eval mode."""
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov8n-nam.yaml", nc=10, verbose=False)
    randomise_bn_(model, seed=0)
    return model.eval()


def _nams(model: nn.Module) -> list[NAM]:
    return [m for m in model.modules() if isinstance(m, NAM)]


def _pred(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The (B, 4 + nc, anchors) prediction of a detection model in eval mode."""
    with torch.no_grad():
        y = model(x)
    return y[0] if isinstance(y, (list, tuple)) else y


def test_fused_model_equals_unfused_model(nam_model):
    x = torch.rand(1, 3, 64, 64)
    conv_only = deepcopy(nam_model)
    fused = deepcopy(nam_model).fuse(verbose=False)
    nams = _nams(fused)
    assert len(nams) == 4 and all(m.fused for m in nams)
    for m in _nams(conv_only.fuse(verbose=False)):
        m.unfuse()  # Ultralytics' Conv+BN folding only: isolates NAM's fold
    y, y_fused, y_conv = _pred(nam_model, x), _pred(fused, x), _pred(conv_only, x)
    assert y.shape == (1, 4 + 10, 84)
    # Boxes are pixel coordinates (up to ~1e2, float32 steps ~1e-5 there): a few steps of rounding, as Ultralytics'
    # own Conv+BN folding moves them; class scores within 1e-5.
    for other in (y_conv, y):  # NAM's fold alone, and end to end against the unfused model
        torch.testing.assert_close(y_fused[:, :4], other[:, :4], rtol=0, atol=1e-4)
        torch.testing.assert_close(y_fused[:, 4:], other[:, 4:], rtol=0, atol=ATOL)
    fused.fuse(verbose=False)  # idempotent
    assert torch.equal(_pred(fused, x), y_fused)


def test_install_fuse_is_idempotent():
    import ultralytics.nn.tasks as tasks

    from yolo_attn.integration.fuse import install_fuse

    install_fuse(tasks)
    install_fuse(tasks)
    wrapper = tasks.BaseModel.fuse
    assert wrapper._yolo_attn and not getattr(wrapper.__wrapped__, "_yolo_attn", False)


def test_val_and_predict_run_with_folded_nam(nam_model, tiny_data, tmp_path):
    """``val`` and ``predict`` (AutoBackend(fuse=True)) run the model with every NAM folded."""
    from ultralytics import YOLO
    from ultralytics.utils import YAML

    model = YOLO("yolov8n-nam.yaml")
    model.model = deepcopy(nam_model)
    model.model.names = {i: str(i) for i in range(10)}
    seen = []
    for m in _nams(model.model):
        m.register_forward_hook(lambda mod, inp, out: seen.append(mod.fused))
    source = next((tiny_data.parent / YAML.load(tiny_data)["val"]).glob("*.*"))
    model.predict(source, imgsz=64, save=False, verbose=False)
    assert seen and all(seen)
    seen.clear()
    model.val(data=str(tiny_data), imgsz=64, batch=8, workers=0, plots=False, project=str(tmp_path), verbose=False)
    assert seen and all(seen)


# ----------------------------------------------------------------------------------------------------------------------
# SimAM, SE, DAS: fast paths equal the formulas
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grad", list(GRAD_MODES))
def test_simam_paths_match_closed_form(grad):
    m = SimAM(8, e_lambda=1e-4)
    for shape in [(2, 8, 40, 40), (1, 8, 5, 9), (2, 8, 1, 4)]:
        x = torch.randn(shape) * 2 + 1
        with GRAD_MODES[grad]():
            y, g = m(x), m.gate(x)
        torch.testing.assert_close(y.double(), simam_reference(x, 1e-4), rtol=0, atol=ATOL)
        torch.testing.assert_close(y, x * g, rtol=0, atol=1e-6)
    x = torch.randn(3, 8, 1, 1)
    with GRAD_MODES[grad]():
        torch.testing.assert_close(m(x), x * torch.sigmoid(torch.tensor(0.5)), rtol=0, atol=1e-6)  # n floored at 1


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("grad", list(GRAD_MODES))
def test_se_paths_match_matmul_reference(mode, grad):
    se = getattr(randomise_(SE(64, reduction=16), seed=5), mode)()
    x = torch.randn(2, 64, 13, 9)
    with GRAD_MODES[grad]():
        y = se(x)
    torch.testing.assert_close(y.double(), se_reference(x, se), rtol=0, atol=ATOL)


def test_das_sampled_deform_conv_matches_torchvision():
    """The CPU formulation equals torchvision's kernel (float64) at every kernel size, also at map borders."""
    from yolo_attn.modules.das import deform_conv2d_sampled

    torch.manual_seed(0)
    for k in (1, 3, 5):
        for hw in [(1, 1), (1, 6), (9, 1), (24, 17)]:
            h, w, b = torch.randn(2, 5, *hw), torch.randn(7, 5, k, k) * 0.3, torch.randn(7)
            off = torch.randn(2, 2 * k * k, *hw) * 2  # a few pixels, reaching outside the map
            ref = deform_conv2d(h.double(), off.double(), w.double(), b.double(), padding=k // 2)
            torch.testing.assert_close(deform_conv2d_sampled(h, off, w, b).double(), ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", ["integer", "far", "tiny", "float64"])
def test_das_gather_exact_where_float32_coordinates_are_not(kind):
    """The gather splits each position into an integer corner and the offset's fraction: exact on a 160x96 map.

    Integer offsets hit pixel centres (one corner of weight 1), far ones (hundreds of px, beyond the zero border)
    read zeros, tiny ones (1e-6 px) must still move the samples as torchvision's float64 kernel does, and float64
    input stays float64.
    """
    from yolo_attn.modules.das import deform_conv2d_sampled

    g = torch.Generator().manual_seed(1)
    h, w, b = torch.randn(2, 4, 160, 96, generator=g), torch.randn(6, 4, 3, 3, generator=g) * 0.3, torch.zeros(6)
    off = {
        "integer": torch.randint(-3, 4, (2, 18, 160, 96), generator=g).float(),
        "far": torch.randn(2, 18, 160, 96, generator=g) * 400,
        "tiny": torch.randn(2, 18, 160, 96, generator=g) * 1e-6,
        "float64": torch.randn(2, 18, 160, 96, generator=g) * 3,
    }[kind]
    if kind == "float64":
        h, w, b, off = h.double(), w.double(), b.double(), off.double()
    ref = deform_conv2d(h.double(), off.double(), w.double(), b.double(), padding=1)
    y = deform_conv2d_sampled(h, off, w, b)
    assert y.dtype == h.dtype
    torch.testing.assert_close(y.double(), ref, rtol=0, atol=1e-12 if kind == "float64" else ATOL)
    if kind == "far":
        assert (ref == 0).float().mean() > 0.5  # most samples really land outside the map


def test_das_gate_layout_and_channels_last_input():
    """The CPU gate is a contiguous NCHW tensor (the next layer reads it as is), also from channels-last input."""
    das = das_with_offsets(16, alpha=0.25, seed=7).eval()
    x = torch.randn(2, 16, 11, 8)
    with torch.no_grad():
        y, g = das(x), das.gate(x)
        y_cl = das(x.contiguous(memory_format=torch.channels_last))
    assert g.is_contiguous() and y.is_contiguous()
    torch.testing.assert_close(y_cl, y, rtol=0, atol=ATOL)  # the depthwise conv sums in another order
    with torch.no_grad():
        torch.testing.assert_close(g, das._gate_torchvision(x), rtol=0, atol=ATOL)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("grad", list(GRAD_MODES))
def test_das_paths_match_torchvision_reference(mode, grad):
    """Against stock torchvision modules in float64 on a 40x40 map, where float32 sampling coordinates would drift."""
    das = getattr(das_with_offsets(16, alpha=0.25, seed=3), mode)()
    ref = getattr(DASReference(das).double(), mode)()
    x = torch.randn(2, 16, 40, 40)
    with GRAD_MODES[grad]():
        y, g = das(x), das.gate(x)
    with torch.no_grad():
        y_ref = ref(x.double())
    torch.testing.assert_close(y.double(), y_ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(y, x * g, rtol=0, atol=1e-6)


def test_das_gradients_match_torchvision_reference():
    das = das_with_offsets(16, alpha=0.25, seed=4).train()
    ref = DASReference(das).double().train()
    x = torch.randn(2, 16, 12, 10, requires_grad=True)
    x64 = x.detach().double().requires_grad_()
    w = torch.randn(2, 16, 12, 10)
    (das(x) * w).sum().backward()
    (ref(x64) * w.double()).sum().backward()
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-5)
    for (name, p), p_ref in zip(
        [("dw", das.dw.weight), ("pw", das.pw.weight), ("offset", das.offset.weight), ("weight", das.weight)],
        [ref.dw.weight, ref.pw.weight, ref.offset.weight, ref.dcn.weight],
    ):
        torch.testing.assert_close(p.grad.double(), p_ref.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_das_traced_graph_uses_torchvision_op_and_matches_eager():
    """Tracing (TorchScript, ONNX export) records torchvision's deform_conv2d, with the same output as eager."""
    das = das_with_offsets(16, alpha=0.25, seed=5).eval()
    x = torch.randn(1, 16, 20, 20)
    with torch.no_grad():
        traced = torch.jit.trace(das, x, check_trace=False)
        y_eager, y_traced = das(x), traced(x)
    assert "deform_conv2d" in str(traced.inlined_graph)
    torch.testing.assert_close(y_traced, y_eager, rtol=0, atol=ATOL)
