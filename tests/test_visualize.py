"""Attention maps: per-layer overlays and a contact sheet for any kit model, aligned with the source image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import CONFIGS, KIT_BLOCKS
from ultralytics import YOLO

from yolo_attn.cli import main
from yolo_attn.visualize import CHANNEL_WEIGHTED, SHEET_NAME, SPATIAL_MEAN, attention_maps, visualize

IMGSZ = 64
CLASSES = {n.lower(): cls for n, cls in KIT_BLOCKS}  # config stem -> block class
CHECKPOINT_CFG = CONFIGS[-1]  # this one is mapped from a saved checkpoint, the others from their YAML
PARAMETER_FREE = [cls for cls in CLASSES.values() if not list(cls(3).parameters())]  # deterministic gates


def channel_gate(cls: type) -> bool:
    """Whether the block's gate is one number per channel, (B, C, 1, 1) (mapped as a |x|-weighted channel gate)."""
    return cls(16).eval().gate(torch.rand(1, 16, 8, 8)).shape[-2:] == (1, 1)


@pytest.fixture(scope="module")
def image(tiny_data, tmp_path_factory) -> Path:
    """A non-square (120x90) image from the built-in dataset, so letterbox padding has to be cropped away."""
    src = cv2.imread(str(next((tiny_data.parent / "images" / "val").glob("*.jpg"))))
    path = tmp_path_factory.mktemp("img") / "digits.png"
    cv2.imwrite(str(path), cv2.resize(src, (120, 90)))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An (untrained) kit YOLOv8n saved as a checkpoint, as training would leave best.pt (half precision)."""
    path = tmp_path_factory.mktemp("ckpt") / f"{CHECKPOINT_CFG}.pt"
    YOLO(f"yolov8n-{CHECKPOINT_CFG}.yaml").save(path)
    return path


def _check_outputs(paths: list[Path], out: Path, names: list[str], shape: tuple[int, int]) -> None:
    """Every layer file is a PNG of the image's size; the contact sheet is a readable image and comes last."""
    assert [p.name for p in paths] == [*names, SHEET_NAME] and all(p.parent == out for p in paths)
    for p in paths[:-1]:
        img = cv2.imread(str(p))
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and img is not None and img.shape == (*shape, 3), p
    sheet = cv2.imread(str(paths[-1]))
    assert paths[-1].read_bytes()[:4] == b"\x89PNG" and sheet is not None and sheet.shape[1] > shape[1]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_every_config(cfg, image, checkpoint, tmp_path):
    """Each ready-made config (one from a checkpoint) gives 4 maps in [0, 1], one PNG each, and a contact sheet."""
    model = checkpoint if cfg == CHECKPOINT_CFG else YOLO(f"yolov8n-{cfg}.yaml")
    maps = attention_maps(model, image, imgsz=IMGSZ)
    block = CLASSES[cfg].__name__
    assert [m.block for m in maps] == [block] * 4 and [m.stride for m in maps] == [4, 8, 16, 32]
    for m in maps:  # every kit gate is a sigmoid or a product of sigmoids
        assert m.gate.shape == (90, 120) and m.gate.dtype == np.float32
        assert np.isfinite(m.gate).all() and 0.0 <= m.gate.min() <= m.gate.max() <= 1.0
    assert maps[0].reduction == (CHANNEL_WEIGHTED if channel_gate(CLASSES[cfg]) else SPATIAL_MEAN)
    paths = visualize(model, image, tmp_path, imgsz=IMGSZ)
    _check_outputs(paths, tmp_path, [f"layer{m.layer:02d}_{block}.png" for m in maps], (90, 120))


def test_other_task_any_rows(image, tmp_path):
    """A classification model with two attention rows of different kinds: both layers are mapped by YAML index."""
    yaml = tmp_path / "cls-attn.yaml"
    (a, cls_a), (b, cls_b) = KIT_BLOCKS[0], KIT_BLOCKS[-1]
    yaml.write_text(
        f"nc: 3\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, {a}, []]\n  - [-1, 1, Conv, [32, 3, 2]]\n"
        f"  - [-1, 1, {b}, []]\nhead:\n  - [-1, 1, Classify, [nc]]\n"
    )
    model = YOLO(yaml)
    assert model.task == "classify"
    paths = visualize(model, image, tmp_path / "out", imgsz=IMGSZ)
    names = [f"layer01_{cls_a.__name__}.png", f"layer03_{cls_b.__name__}.png"]
    _check_outputs(paths, tmp_path / "out", names, (90, 120))


@pytest.mark.parametrize("cls", PARAMETER_FREE, ids=lambda c: c.__name__)
def test_map_aligned_with_image(cls, tmp_path):
    """The map is cropped out of the letterbox padding: a bright square's gate peak sits on the square."""
    img = np.zeros((50, 120, 3), np.uint8)  # 50 px high: at imgsz 128 the letterbox pads 5 + 6 rows
    img[10:30, 80:100] = 255
    # a parameter-free stride-1 gate: high where pixels stand out
    (m,) = attention_maps(nn.Sequential(cls(3)), img, imgsz=128)
    assert m.layer == "0" and m.stride == 1 and m.gate.shape == (50, 120)
    ys, xs = np.nonzero(m.gate > (m.gate.min() + m.gate.max()) / 2)
    assert abs(ys.mean() - 19.5) < 1.0 and abs(xs.mean() - 89.5) < 1.0


def test_clear_errors(image, tmp_path):
    """No attention layers, missing or unreadable images and bad options each raise an error naming the problem."""
    with pytest.raises(ValueError, match="model has no kit attention layers"):
        attention_maps(YOLO("yolov8n.yaml"), image, imgsz=IMGSZ)
    net = nn.Sequential(KIT_BLOCKS[0][1](3))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        visualize(net, tmp_path / "missing.jpg", tmp_path)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="could not be read as an image"):
        attention_maps(net, bad)
    with pytest.raises(ValueError, match="alpha must be a number in"):
        visualize(net, image, tmp_path, alpha=2)
    with pytest.raises(ValueError, match="imgsz must be a positive integer"):
        attention_maps(net, image, imgsz=0)
    assert not list(tmp_path.glob("*.png"))


def test_cli(checkpoint, image, tmp_path, capsys):
    """`yolo-attn visualize` on a checkpoint prints the files it wrote; a directory source gets one folder per image."""
    out = tmp_path / "maps"
    main(["visualize", f"model={checkpoint}", f"source={image}", f"out={out}", f"imgsz={IMGSZ}", "alpha=0.3"])
    printed = [Path(p) for p in capsys.readouterr().out.split()]
    _check_outputs(printed, out, [p.name for p in printed[:-1]], (90, 120))
    assert len(printed) == 5
    src = tmp_path / "dir"
    src.mkdir()
    for name in ("a.jpg", "b.png"):
        cv2.imwrite(str(src / name), cv2.imread(str(image)))
    main(["visualize", f"model={checkpoint}", f"source={src}", f"out={out}", f"imgsz={IMGSZ}"])
    printed = [Path(p) for p in capsys.readouterr().out.split()]
    assert len(printed) == 10 and {p.parent.name for p in printed} == {"a", "b"}
    with pytest.raises(SystemExit, match="out=... required"):
        main(["visualize", f"model={checkpoint}", f"source={image}"])
    with pytest.raises(SystemExit, match="yolo-attn visualize: source .* does not exist"):
        main(["visualize", f"model={checkpoint}", f"source={tmp_path / 'nope.jpg'}", f"out={out}"])
