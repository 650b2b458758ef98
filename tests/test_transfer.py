"""Pretrained-weight transfer: a stock YOLOv8n checkpoint (trained here, offline) loads into every attention variant.

The stock checkpoint is trained once per session for one epoch on the tiny built-in dataset, so its tensors (BN
statistics included) differ from any fresh initialisation and equality at the mapped positions means they landed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import CONFIGS, run_python
from ultralytics import YOLO
from ultralytics.nn.tasks import BaseModel, DetectionModel, load_checkpoint

import yolo_attn
from yolo_attn import WeightTransferError, transfer_weights
from yolo_attn.integration import transfer

IMGSZ = 64
WITH_WEIGHTS = [n.lower() for n, cls in yolo_attn.BLOCKS.items() if list(cls(16).parameters())]  # config suffixes
TRAIN = dict(epochs=1, imgsz=IMGSZ, batch=8, workers=0, device="cpu", plots=False, exist_ok=True, seed=0, val=False)


@pytest.fixture(scope="session")
def stock_pt(tiny_data, tmp_path_factory) -> Path:
    """A stock YOLOv8n checkpoint trained for one epoch on the tiny built-in dataset (no download)."""
    project = tmp_path_factory.mktemp("stock")
    YOLO("yolov8n.yaml").train(data=str(tiny_data), project=str(project), name="stock", **TRAIN)
    return project / "stock" / "weights" / "last.pt"


def _variant(cfg: str, nc: int = 10) -> DetectionModel:
    """Build yolov8n-<cfg> with the tiny dataset's class count."""
    return DetectionModel(f"yolov8n-{cfg}.yaml", nc=nc, verbose=False)


def _attention_keys(model: nn.Module) -> list[str]:
    """Return the state-dict keys of a model's attention rows."""
    rows = [i for i, m in enumerate(model.model) if transfer.is_attention(m)]
    return [k for k in model.state_dict() if int(k.split(".")[1]) in rows]


def _assert_landed(target: nn.Module, source: nn.Module, layer_map: dict[int, int]) -> int:
    """Assert every source tensor equals the target tensor at its mapped row; return how many were compared."""
    tsd, n = target.state_dict(), 0
    for key, value in source.state_dict().items():
        _, s, rest = key.split(".", 2)
        t = next(t for t, si in layer_map.items() if si == int(s))
        assert torch.equal(tsd[f"model.{t}.{rest}"], value.float()), f"{key} -> model.{t}.{rest} differs"
        n += 1
    return n


@pytest.mark.parametrize("cfg", CONFIGS)
def test_every_stock_tensor_lands(cfg, stock_pt):
    """transfer_weights(variant, stock.pt): all stock tensors land at their stock positions, only the attention rows'
    own tensors keep their initialisation, and the counts add up."""
    stock, _ = load_checkpoint(stock_pt)
    target = _variant(cfg)
    report = transfer_weights(target, stock_pt, verbose=False)
    own = _attention_keys(target)
    print(f"\n{cfg}: {report.summary()}")
    assert report.source_total == len(stock.state_dict()) == report.transferred
    assert report.target_total == len(target.state_dict()) == report.source_total + len(own)
    assert report.not_transferred == own and report.unused == []
    assert report.attention_rows == [3, 6, 9, 12]
    assert _assert_landed(target, stock, report.layer_map) == report.source_total
    assert target.names == stock.names


def test_yolo_load_is_mapped_and_logged(stock_pt, monkeypatch):
    """YOLO('yolov8n-se.yaml').load(stock.pt) goes through the mapping and logs the one-line summary."""
    from ultralytics.utils import LOGGER

    lines = []
    monkeypatch.setattr(LOGGER, "info", lambda msg, *a, **k: lines.append(str(msg)))
    model = YOLO("yolov8n-se.yaml")  # nc=80 from the YAML: Ultralytics' load rebuilds the class branch itself
    model.load(str(stock_pt))
    stock, _ = load_checkpoint(stock_pt)
    sd = model.model.state_dict()
    assert torch.equal(sd["model.4.conv.weight"], stock.state_dict()["model.3.conv.weight"])  # shifted by one row
    assert torch.equal(sd["model.26.cv2.0.0.conv.weight"], stock.state_dict()["model.22.cv2.0.0.conv.weight"])
    summary = [x for x in lines if x.startswith("Transferred ")]
    assert len(summary) == 1 and "mapped by position" in summary[0] and "3, 6, 9, 12" in summary[0], lines


def test_train_pretrained_starts_from_mapped_weights(stock_pt, tiny_data, tmp_path):
    """train(pretrained=stock.pt) builds the variant and starts from the mapped stock weights (checked at the end of
    the pre-train routine, before any step; the run is stopped there to keep the test fast)."""

    class Started(Exception):
        pass

    def check(trainer):
        stock, _ = load_checkpoint(stock_pt)
        sd = trainer.model.state_dict()
        for t, s in ((0, 0), (5, 4), (13, 10), (26, 22)):
            for key, value in stock.model[s].state_dict().items():
                assert torch.equal(sd[f"model.{t}.{key}"].cpu(), value), (t, s, key)
        raise Started

    model = YOLO("yolov8n-nam.yaml")
    model.add_callback("on_pretrain_routine_end", check)
    with pytest.raises(Started):
        model.train(data=str(tiny_data), project=str(tmp_path), name="ft", pretrained=str(stock_pt), **TRAIN)


def test_cli_pretrained(stock_pt, tiny_data, tmp_path, env_subprocess):
    """`yolo-attn train model=yolov8n-das.yaml pretrained=stock.pt` maps the stock weights (its logged line). The run
    is stopped once the model is set up, by a callback added before the CLI starts, to keep the test fast."""
    args = ["train", "model=yolov8n-das.yaml", f"data={tiny_data}", f"pretrained={stock_pt}", "epochs=1",
            f"imgsz={IMGSZ}", "batch=8", "workers=0", "device=cpu", "plots=False", f"project={tmp_path}",
            "name=cli", "exist_ok=True"]
    code = f"""
from ultralytics.utils.callbacks.base import default_callbacks
def stop(trainer):
    print('model set up', flush=True)
    raise SystemExit(0)
default_callbacks['on_pretrain_routine_end'].append(stop)
from yolo_attn.cli import main
main({args!r})
"""
    proc = run_python(code, dict(env_subprocess, YOLO_VERBOSE="True"), cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "model set up" in out, out[-3000:]
    n_das = len(_attention_keys(_variant("das")))
    assert f"Transferred 355/{355 + n_das} items from pretrained weights (yolo-attn:" in out, out[-3000:]


def test_wrong_scale_is_refused_and_nothing_loaded(stock_pt):
    """A yolov8n checkpoint into yolov8s-se: a clear error naming both scales, and the target is left untouched."""
    target = DetectionModel("yolov8s-se.yaml", nc=10, verbose=False)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(WeightTransferError, match=r"scale 'n' and the target scale 's'.*Nothing was loaded"):
        target.load(load_checkpoint(stock_pt)[0])
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())


def test_other_base_is_refused():
    """A YOLO11n model into yolov8n-se: the first differing layer is named."""
    source = DetectionModel("yolo11n.yaml", nc=10, verbose=False)
    with pytest.raises(WeightTransferError, match=r"stock layer 2 .*C2f in the target, C3k2 in the checkpoint"):
        transfer_weights(_variant("se"), source, verbose=False)


def test_kit_rows_of_the_source_map_when_they_line_up(stock_pt):
    """A checkpoint with one block's rows: into the same variant everything transfers; into another block's variant
    the checkpoint's block tensors are unused and the target's keep their own; into stock yolov8n all stock tensors
    land (no half load by index)."""
    one, other = WITH_WEIGHTS[:2]
    src = _variant(one)
    transfer_weights(src, stock_pt, verbose=False)
    with torch.no_grad():
        for p in src.model[6].parameters():
            p.add_(1.0)  # make the attention rows distinguishable from a fresh block
    same = transfer_weights(_variant(one), {"model": src}, verbose=False)
    assert same.transferred == same.target_total == same.source_total and same.attention_rows == []
    target = _variant(other)
    cross = transfer_weights(target, src, verbose=False)
    assert cross.transferred == 355 and cross.unused == _attention_keys(src)
    assert cross.not_transferred == _attention_keys(target)
    stock = DetectionModel("yolov8n.yaml", nc=10, verbose=False)
    stock.load(src)  # through the hook: a kit row on the source side
    stock_ref, _ = load_checkpoint(stock_pt)
    assert all(torch.equal(v, stock_ref.state_dict()[k]) for k, v in stock.state_dict().items())


def test_checkpoint_dict_prefers_ema_and_takes_names():
    """A checkpoint dict loads its 'ema' model when present (as Ultralytics does), else its 'model'; once every stock
    tensor landed, a YAML-built target with placeholder class names takes the checkpoint's names."""
    ema, raw = (DetectionModel("yolov8n.yaml", nc=10, verbose=False) for _ in range(2))
    ema.names = {i: f"digit {i}" for i in range(10)}
    with torch.no_grad():
        ema.model[0].conv.weight.fill_(0.5)
    target = _variant("nam")
    transfer_weights(target, {"ema": ema, "model": raw}, verbose=False)
    assert torch.equal(target.model[0].conv.weight, ema.model[0].conv.weight)
    assert target.names == ema.names


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a detached copy of a model's state dict (dtype and values)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    """Return whether a model still holds exactly the tensors (dtype included) of ``before``."""
    after = model.state_dict()
    return after.keys() == before.keys() and all(
        after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items()
    )


def test_map_layers_and_transfer_leave_the_source_alone():
    """map_layers changes neither model; transfer_weights loads a half-precision source as float32 without casting
    the caller's model (Ultralytics' load casts the model it reads from in place)."""
    source = DetectionModel("yolov8n.yaml", nc=10, verbose=False)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.rand_like(p))  # distinguishable from any fresh initialisation
    source.half()
    target = _variant(WITH_WEIGHTS[0])
    before_s, before_t = _snapshot(source), _snapshot(target)
    plan = transfer.map_layers(source, target)
    assert _unchanged(source, before_s) and _unchanged(target, before_t)
    report = transfer_weights(target, source, verbose=False)
    assert _unchanged(source, before_s), "transfer_weights cast or changed the caller's source model"
    assert report.layer_map == plan and report.transferred == len(before_s)
    tsd = target.state_dict()
    for key, value in before_s.items():
        _, s, rest = key.split(".", 2)
        t = next(t for t, si in plan.items() if si == int(s))
        loaded = tsd[f"model.{t}.{rest}"]
        assert loaded.dtype == (torch.float32 if value.is_floating_point() else value.dtype)
        assert torch.equal(loaded, value.to(loaded.dtype))


def test_plain_ultralytics_loads_unchanged(stock_pt):
    """Loads between plain Ultralytics models keep the original behaviour (a partial load of another scale too)."""
    wrapped = BaseModel.load
    assert getattr(wrapped, "_yolo_attn", False)
    yolo_attn.register()  # idempotent: wrapped once
    assert BaseModel.load is wrapped and not getattr(wrapped.__wrapped__, "_yolo_attn", False)
    stock, _ = load_checkpoint(stock_pt)
    small = DetectionModel("yolov8s.yaml", nc=10, verbose=False)
    small.load(stock)  # no kit rows on either side: Ultralytics' by-name, by-shape intersection, no error
    plain = DetectionModel("yolov8n.yaml", nc=10, verbose=False)
    plain.load(stock)
    assert all(torch.equal(v, stock.state_dict()[k]) for k, v in plain.state_dict().items())


def test_post_transfer_metrics_printed(stock_pt, tiny_data, tmp_path):
    """Print stock and post-transfer (no fine-tuning) mAP on the tiny validation split (printed, not asserted:
    one epoch on 16 images is noise; benchmarks/transfer_metrics.py measures it properly)."""
    rows = []
    for cfg in ["stock", *CONFIGS]:
        model = YOLO(str(stock_pt))
        if cfg != "stock":
            model.model = _variant(cfg)
            report = transfer_weights(model.model, stock_pt, verbose=False)
        m = model.val(data=str(tiny_data), imgsz=IMGSZ, batch=8, workers=0, device="cpu", plots=False, verbose=False,
                      project=str(tmp_path), name=cfg)
        counts = "" if cfg == "stock" else f"{report.transferred}/{report.target_total}"
        rows.append(f"{cfg:<6} {counts:>8} mAP50 {m.box.map50:.4f} mAP50-95 {m.box.map:.4f}")
        assert 0.0 <= m.box.map <= m.box.map50 <= 1.0
    print("\n" + "\n".join(rows))
