"""Benchmark: does the L1 penalty make BN channels removable? p = 0 vs p > 0, with SGD and with AdamW.

Trains a model (default stock ``yolov8n.yaml``) on the built-in digits data with ``nam_penalty_scope=all`` (every
BatchNorm2d weight: the network-slimming setting) and reports, from the final weights (``last.pt``):

- the fraction of BN |gamma| below the absolute pruning threshold (``SPARSITY_THRESHOLD``, 0.01; BN gammas start at 1),
- the fraction below a relative threshold: ``|gamma| < rel * max|gamma|`` of the same BN layer (default 5%). A channel
  far below its layer's strongest one carries a negligible share of the layer's output variance, whatever the layer's
  overall scale; unlike the absolute threshold it is not met by a penalty that merely shrinks a whole layer uniformly,
  so it counts channels that became removable *relative to their peers* (the selection network slimming relies on);
- mAP50 / mAP50-95 of the trained model, and after zeroing the gammas under each threshold (what removing those
  channels would leave, with their constant BN shift kept, before any fine-tuning), plus the relative change of the
  raw head output on the validation images that zeroing causes (``||y_zeroed - y|| / ||y||``): near 0 means the
  channels were removable; it stays informative where a short run leaves mAP near 0;
- the final epoch's train and validation losses (box + cls + dfl, from ``results.csv``): short runs from scratch leave
  mAP near 0, and the train loss shows what the penalty costs before mAP can (the validation loss of a barely trained
  model is erratic).

    python benchmarks/sparsity.py [--model yolov8n.yaml] [--epochs 12] [--n-train 128] [--imgsz 96] [--batch 4]
        [--sgd-p 0,3.5e-2] [--adamw-p 0,1e-3] [--adamw-lr0 0.01] [--seed 0] [--out benchmarks/results/sparsity.json]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from ultralytics import YOLO  # noqa: E402

import yolo_attn  # noqa: E402 - registers the blocks and the penalty callbacks
from yolo_attn.data import make_digits_dataset  # noqa: E402
from yolo_attn.training import SPARSITY_THRESHOLD  # noqa: E402
from _results import write_json  # benchmarks/ is on sys.path when a script runs

__all__ = ["main"]


def bn_gammas(net: nn.Module) -> list[torch.Tensor]:
    """Return |gamma| of every BatchNorm2d in ``net``, one tensor per layer.

    Args:
        net (nn.Module): The network.

    Returns:
        (list[torch.Tensor]): Detached float absolute scale factors.
    """
    return [m.weight.detach().abs().float() for m in net.modules() if isinstance(m, nn.BatchNorm2d)]


def below(gammas: list[torch.Tensor], absolute: float, rel: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Return per-layer masks of the channels under the absolute and under the relative threshold.

    Args:
        gammas (list[torch.Tensor]): |gamma| per layer.
        absolute (float): Absolute threshold.
        rel (float): Relative threshold, as a fraction of the layer's largest |gamma|.

    Returns:
        (tuple[list[torch.Tensor], list[torch.Tensor]]): Boolean masks, absolute then relative.
    """
    return [g < absolute for g in gammas], [g < rel * g.max() for g in gammas]


def fraction(masks: list[torch.Tensor]) -> float:
    """Return the fraction of ``True`` over all masks."""
    return float(sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks))


def val_map(model: YOLO, data: str, args: argparse.Namespace, project: str) -> tuple[float, float]:
    """Validate ``model`` and return (mAP50, mAP50-95)."""
    m = model.val(data=data, imgsz=args.imgsz, batch=16, device="cpu", workers=0, plots=False, verbose=False,
                  project=project, name="val", exist_ok=True)
    return float(m.box.map50), float(m.box.map)


def val_images(data: str, n: int = 16) -> torch.Tensor:
    """Return the first ``n`` validation images of the built-in dataset as a float batch in [0, 1]."""
    import numpy as np
    from PIL import Image

    files = sorted((Path(data).parent / "images" / "val").glob("*.jpg"))[:n]
    images = [torch.from_numpy(np.asarray(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f in files]
    return torch.stack(images) / 255


@torch.no_grad()
def head_output(model: YOLO, x: torch.Tensor) -> torch.Tensor:
    """Return the eval-mode head output (boxes and class scores) for ``x``."""
    y = model.model.float().eval()(x)
    return y[0] if isinstance(y, (list, tuple)) else y


@torch.no_grad()
def zero_gammas(model: YOLO, masks: list[torch.Tensor]) -> None:
    """Set the BN weights under ``masks`` to 0 in place (the shift beta stays: a removed channel's constant output)."""
    bns = [m for m in model.model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn, mask in zip(bns, masks):
        bn.weight[mask.to(bn.weight.device)] = 0.0


def run_one(optimizer: str, p: float, data: str, project: str, args: argparse.Namespace) -> dict:
    """Train one model with penalty ``p`` and measure its sparsity and accuracy.

    Args:
        optimizer (str): ``"SGD"`` or ``"AdamW"``.
        p (float): Penalty weight.
        data (str): Data YAML.
        project (str): Run directory root (temporary).
        args (argparse.Namespace): Benchmark options.

    Returns:
        (dict): The measurements.
    """
    name = f"{optimizer}-p{p:g}"
    lr0 = args.sgd_lr0 if optimizer == "SGD" else args.adamw_lr0
    model = yolo_attn.set_nam_penalty(YOLO(args.model), p, scope="all")
    t = time.perf_counter()
    model.train(data=data, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, nbs=args.batch, optimizer=optimizer,
                lr0=lr0, warmup_epochs=1, val=False, plots=False, workers=0, device="cpu", amp=False,
                seed=args.seed, deterministic=True, verbose=False, project=project, name=name, exist_ok=True)
    seconds = time.perf_counter() - t
    run = Path(project) / name
    last = run / "weights" / "last.pt"
    with open(run / "results.csv") as f:
        final = {k.strip(): v for k, v in list(csv.DictReader(f))[-1].items()}
    trained = YOLO(str(last))
    gammas = bn_gammas(trained.model)
    mask_abs, mask_rel = below(gammas, SPARSITY_THRESHOLD, args.rel)
    map50, map5095 = val_map(trained, data, args, project)
    res = {
        "optimizer": optimizer, "lr0": lr0, "p": p, "train_s": round(seconds, 1),
        "bn_channels": sum(g.numel() for g in gammas),
        "median_abs_gamma": float(torch.cat(gammas).median()), "frac_below_abs": fraction(mask_abs),
        "frac_below_rel": fraction(mask_rel), "map50": map50, "map50_95": map5095,
        "train_loss": sum(float(final[f"train/{k}_loss"]) for k in ("box", "cls", "dfl")),
        "val_loss": sum(float(final[f"val/{k}_loss"]) for k in ("box", "cls", "dfl")),
    }
    x = val_images(data)
    y = head_output(trained, x)
    for key, mask in (("abs", mask_abs), ("rel", mask_rel)):
        zeroed = YOLO(str(last))
        zero_gammas(zeroed, mask)
        res[f"output_change_zeroed_{key}"] = float((head_output(zeroed, x) - y).norm() / y.norm())
        res[f"map50_zeroed_{key}"], res[f"map50_95_zeroed_{key}"] = val_map(zeroed, data, args, project)
    return res


def table(rows: list[dict], rel: float) -> str:
    """Format the results as a markdown table."""
    t = f"{SPARSITY_THRESHOLD:g}"
    lines = [
        f"| optimizer | lr0 | p | BN \\|gamma\\| < {t} | < {rel:g} x layer max | median \\|gamma\\| | mAP50 | "
        f"mAP50-95 | mAP50-95, < {t} zeroed | output change, < {t} zeroed | output change, relative zeroed | "
        "train / val loss | train s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['optimizer']} | {r['lr0']:g} | {r['p']:g} | {r['frac_below_abs']:.1%} | {r['frac_below_rel']:.1%} | "
            f"{r['median_abs_gamma']:.3g} | {r['map50']:.3f} | {r['map50_95']:.3f} | {r['map50_95_zeroed_abs']:.3f} | "
            f"{r['output_change_zeroed_abs']:.2e} | {r['output_change_zeroed_rel']:.2e} | "
            f"{r['train_loss']:.2f} / {r['val_loss']:.2f} | {r['train_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> dict:
    """Run the benchmark, print a markdown table and write JSON.

    Returns:
        (dict): The results.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="yolov8n.yaml")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--n-train", type=int, default=128)
    ap.add_argument("--n-val", type=int, default=32)
    ap.add_argument("--imgsz", type=int, default=96)
    ap.add_argument("--batch", type=int, default=4, help="also nbs: one optimizer step per batch")
    ap.add_argument("--sgd-p", default="0,3.5e-2", help="penalties for SGD, comma-separated")
    ap.add_argument("--adamw-p", default="0,1e-3", help="penalties for AdamW, comma-separated")
    ap.add_argument("--sgd-lr0", type=float, default=0.01, help="Ultralytics' default lr0")
    ap.add_argument("--adamw-lr0", type=float, default=0.01,
                    help="Ultralytics' default lr0 (optimizer=auto would pick ~7e-4 for 10 classes)")
    ap.add_argument("--rel", type=float, default=0.05, help="relative threshold: fraction of the layer's max |gamma|")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/sparsity.json")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="yolo-attn-sparsity-") as tmp:
        data = str(make_digits_dataset(Path(tmp) / "digits", n_train=args.n_train, n_val=args.n_val, imgsz=args.imgsz,
                                       seed=args.seed))
        for optimizer, ps in (("SGD", args.sgd_p), ("AdamW", args.adamw_p)):
            for p in (float(v) for v in ps.split(",") if v.strip()):  # an empty list skips the optimizer
                rows.append(run_one(optimizer, p, data, str(Path(tmp) / "runs"), args))
                print(rows[-1], flush=True)
    text = table(rows, args.rel)
    print(f"\n{args.model}, scope=all, {args.epochs} epochs, {args.n_train} images at {args.imgsz} px, "
          f"batch {args.batch} "
          f"(one optimizer step per batch), seed {args.seed}\n\n{text}")
    res = {
        "model": args.model, "epochs": args.epochs, "n_train": args.n_train, "n_val": args.n_val, "imgsz": args.imgsz,
        "batch": args.batch, "seed": args.seed, "abs_threshold": SPARSITY_THRESHOLD, "rel_threshold": args.rel,
        "rows": rows, "table": text,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
    }
    write_json(res, args.out)
    return res


if __name__ == "__main__":
    main()
