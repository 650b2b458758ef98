"""Attention maps: each kit block's gate on an input image, as per-layer overlays and one contact sheet.

Every kit block computes ``forward(x) == x * gate(x)``. A forward hook on each block recomputes ``gate(x)`` from the
block's input while the model runs on one image (preprocessed as Ultralytics' predict does: letterbox, BGR->RGB,
/255), and reduces it to one value per pixel:

- spatial gates, (B, C, H, W) or (B, 1, H, W): the mean over channels;
- channel gates, (B, C, 1, 1): one number per channel is the same at every pixel, so its plain mean would be a
  flat map. The map shows instead the effective gate per pixel, ``sum_c g_c |x_c| / sum_c |x_c|``: the share of the
  activation magnitude at that pixel that the gate lets through, which is high where the channels it keeps dominate.
  It is still in (0, 1) and equals the plain mean gate where all channels are equally active.

The map is upsampled (bilinear) to the letterboxed input, cropped to the image region and resized to the image, so it
lines up with the input pixel for pixel. Overlays stretch each map's own min..max over the colour map (OpenCV JET,
blue = min, red = max) and print that range: the absolute gate values are in the caption, not in the colours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
import torch.nn as nn

from .registry import BLOCKS

__all__ = ["AttentionMap", "attention_maps", "load_model", "overlay", "contact_sheet", "visualize"]

SPATIAL_MEAN = "channel mean"
CHANNEL_WEIGHTED = "|x|-weighted channel gate"
SHEET_NAME = "contact_sheet.png"


class AttentionMap(NamedTuple):
    """One attention layer's gate map on one image.

    Attributes:
        layer (int | str): YOLO layer index (the model YAML row), or the module name for nested blocks.
        block (str): Block class name, as registered.
        gate (np.ndarray): float32 map of the source image's (H, W), in [0, 1] for sigmoid gates.
        stride (int): Input pixels per gate cell (letterboxed input size / feature map size).
        reduction (str): How the gate became one value per pixel: ``SPATIAL_MEAN`` or ``CHANNEL_WEIGHTED``.
    """

    layer: int | str
    block: str
    gate: np.ndarray
    stride: int
    reduction: str


def load_model(model: Any) -> nn.Module:
    """Return the PyTorch network of a checkpoint path, model YAML, ``YOLO`` object or module.

    Args:
        model (str | Path | ultralytics.YOLO | nn.Module): What to load.

    Returns:
        (nn.Module): The network (e.g. a ``DetectionModel``).

    Raises:
        TypeError: Not a PyTorch model (e.g. an exported ONNX file).
    """
    from ultralytics.engine.model import Model

    if isinstance(model, (str, Path)):
        from ultralytics import YOLO

        from .integration import register

        register()  # model YAMLs need the blocks (a no-op when already registered)
        model = YOLO(str(model))
    net = model.model if isinstance(model, Model) else model
    if not isinstance(net, nn.Module):
        raise TypeError(
            f"attention maps need a PyTorch model (.pt checkpoint, model YAML, YOLO or nn.Module), got {net!r}; "
            "exported formats (ONNX, TorchScript, ...) do not expose the blocks' gates"
        )
    return net


def _kit_blocks(net: nn.Module) -> list[tuple[int | str, nn.Module]]:
    """Return ``(layer, module)`` for every registered kit block with a ``gate`` method, in module order."""
    from ultralytics.utils import LOGGER

    kinds = BLOCKS.classes()
    found = []
    for name, m in net.named_modules():
        if not isinstance(m, kinds):
            continue
        if not callable(getattr(m, "gate", None)):
            LOGGER.warning(f"yolo-attn: attention maps skip {name} ({type(m).__name__}): it has no gate(x) method")
            continue
        found.append((getattr(m, "i", name), m))  # Ultralytics' parser stores the YAML row index as .i
    if not found:
        raise ValueError(
            f"model has no kit attention layers: no module of {type(net).__name__} is one of the registered blocks "
            f"({', '.join(BLOCKS.names())}) with a gate(x) method; build it from a kit config such as "
            f"{_example_config()} or add a row like '- [-1, 1, {BLOCKS.names()[0]}, []]' to its YAML"
        )
    return found


def _example_config() -> str:
    """Return the name of a ready-made config of the first registered block, e.g. for an error message."""
    return f"yolov8n-{BLOCKS.names()[0].lower()}.yaml"


def _read_image(source: str | Path | np.ndarray) -> np.ndarray:
    """Return a BGR uint8 (H, W, 3) image from a path or an array, with a clear error for anything unusable."""
    if isinstance(source, np.ndarray):
        img = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"source image '{path}' does not exist or is not a file")
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"source '{path}' could not be read as an image (OpenCV cannot decode it)")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
        raise ValueError(f"source image must be uint8 BGR of shape (H, W, 3), got {img.dtype} {img.shape}")
    return img


def _check_imgsz(imgsz: Any) -> int:
    """Return ``imgsz`` as a positive int or raise naming the problem."""
    if isinstance(imgsz, bool) or not isinstance(imgsz, (int, np.integer)) or imgsz < 1:
        raise ValueError(f"imgsz must be a positive integer (e.g. 640), got {imgsz!r}")
    return int(imgsz)


def _reduce(gate: torch.Tensor, x: torch.Tensor) -> tuple[np.ndarray, str]:
    """Reduce one sample's gate (C, h, w) to an (h, w) map; channel gates are weighted by the input magnitude."""
    gate, x = gate.float(), x.float()
    if gate.shape[-2:] == (1, 1) and x.shape[-2:] != (1, 1):  # channel gate: same value at every pixel
        a = x.abs()
        den = a.sum(0)
        eff = (gate * a).sum(0) / den.clamp_min(1e-12)
        eff = torch.where(den > 0, eff, gate.mean())  # an all-zero pixel has no mix of channels: use the mean gate
        return eff.cpu().numpy(), CHANNEL_WEIGHTED
    return gate.mean(0).expand(x.shape[-2:]).cpu().numpy(), SPATIAL_MEAN


def _to_image(fmap: np.ndarray, lb_shape: tuple[int, int], params: dict, orig_shape: tuple[int, int]) -> np.ndarray:
    """Upsample a feature map to the letterboxed input, crop the image region, resize to the original image."""
    up = cv2.resize(fmap.astype(np.float32), lb_shape[::-1], interpolation=cv2.INTER_LINEAR)  # convex: keeps range
    w, h = params["new_unpad"]
    crop = up[params["top"] : params["top"] + h, params["left"] : params["left"] + w]
    return cv2.resize(crop, orig_shape[::-1], interpolation=cv2.INTER_LINEAR)


def _preprocess(net: nn.Module, img: np.ndarray, imgsz: int) -> tuple[torch.Tensor, tuple[int, int], dict]:
    """Letterbox as Ultralytics' predict (minimum rectangle), BGR->RGB, /255; return the batch, its (H, W), params."""
    from ultralytics.data.augment import LetterBox

    stride = max(int(getattr(net, "stride", torch.tensor([32.0])).max()), 32)
    lb = LetterBox(imgsz, auto=True, stride=stride)
    params = lb.get_params({"img": img})
    lb_img = lb.apply_image({"img": img}, params)["img"]
    p = next(net.parameters(), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    device = p.device if p is not None else torch.device("cpu")
    x = torch.from_numpy(np.ascontiguousarray(lb_img[..., ::-1].transpose(2, 0, 1)))  # BGR HWC -> RGB CHW
    return (x.to(device, dtype) / 255.0)[None], lb_img.shape[:2], params


def _capture(net: nn.Module, blocks: list[tuple[int | str, nn.Module]], x: torch.Tensor) -> list[tuple]:
    """Run ``net`` once in eval mode; return ``(layer, block name, gate, input)`` of the first sample per block."""
    captured = []

    def hook_for(layer: int | str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            captured.append((layer, type(module).__name__, module.gate(inputs[0])[0], inputs[0][0]))

        return hook

    handles = [m.register_forward_hook(hook_for(layer)) for layer, m in blocks]
    was_training = net.training
    try:
        net.eval()  # inference statistics (BatchNorm running stats), as predict
        with torch.no_grad():
            net(x)
    finally:
        net.train(was_training)
        for h in handles:
            h.remove()
    return captured


def attention_maps(model: Any, source: str | Path | np.ndarray, imgsz: int = 640) -> list[AttentionMap]:
    """Compute every kit attention layer's gate map on one image.

    Args:
        model (str | Path | ultralytics.YOLO | nn.Module): Checkpoint, model YAML, YOLO object or network.
        source (str | Path | np.ndarray): Image path, or a BGR uint8 (H, W, 3) array as from ``cv2.imread``.
        imgsz (int): Inference size; the image is letterboxed to it (minimum rectangle, as Ultralytics' predict).

    Returns:
        (list[AttentionMap]): One per attention layer in forward order, each map of the image's (H, W).

    Raises:
        ValueError: The model has no kit attention layers, or the image or ``imgsz`` is invalid.
        FileNotFoundError: The image path does not exist.
    """
    imgsz = _check_imgsz(imgsz)
    net = load_model(model)
    blocks = _kit_blocks(net)
    img = _read_image(source)
    x, lb_shape, params = _preprocess(net, img, imgsz)
    maps = []
    for layer, name, gate, inp in _capture(net, blocks, x):
        fmap, how = _reduce(gate, inp)
        stride = int(round(lb_shape[0] / fmap.shape[0]))
        maps.append(AttentionMap(layer, name, _to_image(fmap, lb_shape, params, img.shape[:2]), stride, how))
    return maps


def _caption(am: AttentionMap) -> list[str]:
    """Two caption lines: where the map comes from, and its value range."""
    tag = " |x|-wtd" if am.reduction == CHANNEL_WEIGHTED else ""
    layer = f"L{am.layer}" if isinstance(am.layer, int) else str(am.layer)
    return [f"{layer} {am.block} s{am.stride}{tag}", f"{am.gate.min():.3f}-{am.gate.max():.3f}"]


def _put_lines(img: np.ndarray, lines: list[str], x: int, y: int, width: int, max_scale: float = 0.5) -> None:
    """Draw white text lines on a black box at (x, y), shrinking the font so the widest line fits ``width``."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    widest = max(cv2.getTextSize(t, font, 1.0, 1)[0][0] for t in lines)
    scale = max(min(max_scale, (width - 4) / max(widest, 1)), 0.2)  # below ~0.2 Hershey glyphs are unreadable
    thick = max(1, round(scale))
    (tw, th), base = cv2.getTextSize("Ag", font, scale, thick)
    line_h = th + base + 2
    box_w = max(cv2.getTextSize(t, font, scale, thick)[0][0] for t in lines) + 4
    cv2.rectangle(img, (x, y), (x + box_w, y + line_h * len(lines) + 2), (0, 0, 0), -1)
    for k, t in enumerate(lines):
        cv2.putText(img, t, (x + 2, y + 2 + th + k * line_h), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def overlay(image: np.ndarray, am: AttentionMap, alpha: float = 0.5, caption: bool = True) -> np.ndarray:
    """Blend a colour-mapped attention map (its own min..max stretched over JET) with the image.

    Args:
        image (np.ndarray): BGR uint8 image of the map's size.
        am (AttentionMap): The map.
        alpha (float): Weight of the colour map, in [0, 1].
        caption (bool): Draw the layer, block, stride and value range in the top-left corner.

    Returns:
        (np.ndarray): BGR uint8 image of the same size.
    """
    lo, hi = float(am.gate.min()), float(am.gate.max())
    norm = (am.gate - lo) / (hi - lo) if hi - lo > 1e-12 else np.full_like(am.gate, 0.5)  # flat: mid colour
    colour = cv2.applyColorMap(np.round(norm * 255).astype(np.uint8), cv2.COLORMAP_JET)
    out = cv2.addWeighted(image, 1.0 - alpha, colour, alpha, 0.0)
    if caption:
        _put_lines(out, _caption(am), 0, 0, out.shape[1], max_scale=max(0.4, out.shape[1] / 1000))  # grows with image
    return out


def contact_sheet(
    image: np.ndarray, maps: list[AttentionMap], alpha: float = 0.5, tile: int = 256, cols: int = 5
) -> np.ndarray:
    """Lay out the input and every layer's overlay in a grid, each tile captioned below.

    Args:
        image (np.ndarray): BGR uint8 input image.
        maps (list[AttentionMap]): The maps, each of the image's size.
        alpha (float): Weight of the colour map, in [0, 1].
        tile (int): Longest side of each tile in pixels.
        cols (int): Tiles per row.

    Returns:
        (np.ndarray): The sheet, BGR uint8.
    """
    h0, w0 = image.shape[:2]
    r = tile / max(h0, w0)
    tw, th = max(round(w0 * r), 1), max(round(h0 * r), 1)
    band, pad = 40, 4
    tiles = [(image, [f"input {w0}x{h0}", f"{len(maps)} attention layers"])]
    tiles += [(overlay(image, am, alpha, caption=False), _caption(am)) for am in maps]
    cols = max(1, min(cols, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    sheet = np.full((rows * (th + band + pad) + pad, cols * (tw + pad) + pad, 3), 255, np.uint8)
    for k, (img, lines) in enumerate(tiles):
        x, y = pad + (k % cols) * (tw + pad), pad + (k // cols) * (th + band + pad)
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        sheet[y : y + th, x : x + tw] = cv2.resize(img, (tw, th), interpolation=interp)
        _put_lines(sheet, lines, x, y + th, tw)
    return sheet


def _write(path: Path, img: np.ndarray) -> Path:
    """Write a PNG, raising when OpenCV reports failure (it does not raise by itself)."""
    if not cv2.imwrite(str(path), img, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write '{path}'")
    return path


def _sources(source: str | Path) -> list[tuple[Path, str | None]]:
    """Return ``(image, subdirectory)``: a file goes to the output directory, a directory's images to one each."""
    from ultralytics.data.utils import IMG_FORMATS

    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix[1:].lower() in IMG_FORMATS)
        if not files:
            raise FileNotFoundError(f"source directory '{path}' holds no images ({', '.join(sorted(IMG_FORMATS))})")
        unique = len({p.stem for p in files}) == len(files)
        return [(p, p.stem if unique else p.name) for p in files]
    if not path.is_file():
        raise FileNotFoundError(f"source '{path}' does not exist (give an image file or a directory of images)")
    return [(path, None)]


def visualize(
    model: Any, source: str | Path, out_dir: str | Path, imgsz: int = 640, alpha: float = 0.5, tile: int = 256
) -> list[Path]:
    """Write one overlay PNG per attention layer and a ``contact_sheet.png``.

    Per-layer files are ``layer<index>_<block>.png`` (e.g. ``layer04_<block>.png``), the size of the source image.

    Args:
        model (str | Path | ultralytics.YOLO | nn.Module): Checkpoint, model YAML, YOLO object or network.
        source (str | Path): An image, or a directory whose images each get a subdirectory ``out_dir/<stem>``.
        out_dir (str | Path): Output directory (created if missing; files of the same name are replaced).
        imgsz (int): Inference size.
        alpha (float): Weight of the colour map in the blend, in [0, 1].
        tile (int): Longest side of each contact-sheet tile in pixels.

    Returns:
        (list[Path]): The files written, per image: the layer overlays in forward order, then the sheet.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1] (the colour map's weight), got {alpha!r}")
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 16:
        raise ValueError(f"tile must be an integer >= 16 (contact-sheet tile size in pixels), got {tile!r}")
    sources = _sources(source)  # before loading the model: fail fast on a wrong path
    net = load_model(model)
    written = []
    for path, sub in sources:
        image = _read_image(path)
        maps = attention_maps(net, image, imgsz)
        out = Path(out_dir) / sub if sub else Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for am in maps:
            stem = f"layer{am.layer:02d}" if isinstance(am.layer, int) else am.layer.replace(".", "_")
            written.append(_write(out / f"{stem}_{am.block}.png", overlay(image, am, alpha)))
        written.append(_write(out / SHEET_NAME, contact_sheet(image, maps, alpha, tile)))
    return written
