"""Benchmark: accuracy of the attention variants right after a stock-weight transfer, and after a short fine-tune.

Trains a stock YOLOv8n on the built-in dataset (or takes ``--weights``), then for each ready-made variant
(yolov8n-{nam,simam,se,das}) loads it by position in the stock YAML (no fine-tuning) and validates on the built-in
validation split, next to the stock model. With ``--finetune N`` each variant (and, as the control, the stock model)
is then trained N more epochs from the stock weights. Also printed: the transfer counts, and each attention row's
mean gate on the validation images (1.0 would leave the stock features unchanged).

    python benchmarks/transfer_metrics.py [--epochs 20] [--imgsz 160] [--weights stock.pt] [--finetune 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.nn.tasks import DetectionModel, load_checkpoint  # noqa: E402

import yolo_attn  # noqa: E402 - registers the blocks and the transfer
from yolo_attn.integration.transfer import is_attention  # noqa: E402
from _results import write_json  # benchmarks/ is on sys.path when a script runs

__all__ = ["main"]

CONFIGS = [n.lower() for n in yolo_attn.BLOCKS.names()[:4]]  # the first four registered blocks' ready-made configs


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits.yaml", help="dataset YAML (default: the built-in one)")
    ap.add_argument("--epochs", type=int, default=20, help="stock training epochs (ignored with --weights)")
    ap.add_argument("--weights", default=None, help="reuse this stock YOLOv8n checkpoint instead of training one")
    ap.add_argument("--finetune", type=int, default=3, help="fine-tune epochs after the transfer (0: skip)")
    ap.add_argument("--imgsz", type=int, default=160)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--project", default=None, help="run directory (default: a temporary one)")
    ap.add_argument("--out", default="benchmarks/results/transfer_metrics.json")
    return ap.parse_args()


def _common(args: argparse.Namespace) -> dict:
    return dict(data=args.data, imgsz=args.imgsz, batch=args.batch, device="cpu", workers=2, plots=False)


def _val(model: YOLO, args: argparse.Namespace, project: Path) -> dict:
    """Validate and return mAP50 / mAP50-95, plus each attention row's mean gate over the validation images."""
    gates: dict[int, list[float]] = {}
    active = [False]  # only validation batches: Ultralytics' FLOPs probe feeds uninitialised memory

    def hook(i: int):
        def fn(m, inp, out):
            if active[0] and hasattr(m, "gate"):
                gates.setdefault(i, []).append(float(m.gate(inp[0]).float().mean()))
        return fn

    def toggle(on: bool):
        return lambda validator: active.__setitem__(0, on)

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(model.model.model) if is_attention(m)]
    model.add_callback("on_val_batch_start", toggle(True))
    model.add_callback("on_val_batch_end", toggle(False))
    metrics = model.val(**_common(args), project=str(project), name="val", exist_ok=True, verbose=False)
    for h in handles:
        h.remove()
    return {"map50": float(metrics.box.map50), "map50_95": float(metrics.box.map),
            "mean_gate": {i: sum(v) / len(v) for i, v in gates.items()}}


def _stock(args: argparse.Namespace, project: Path) -> Path:
    """Return the stock checkpoint: ``--weights``, or a YOLOv8n trained here on ``--data``."""
    if args.weights:
        return Path(args.weights)
    model = YOLO("yolov8n.yaml")
    model.train(**_common(args), epochs=args.epochs, project=str(project), name="stock", exist_ok=True, seed=0)
    return Path(model.trainer.best)


def _transferred(cfg: str, weights: Path, nc: int) -> tuple[YOLO, yolo_attn.TransferReport]:
    """Return a YOLO wrapper around yolov8n-<cfg> (at the checkpoint's class count) holding the stock weights."""
    model = YOLO(str(weights))  # keeps the checkpoint's task and arguments
    torch.manual_seed(0)  # gates with random initial weights: the same draw on every run
    model.model = DetectionModel(f"yolov8n-{cfg}.yaml", nc=nc, verbose=False)
    report = yolo_attn.transfer_weights(model.model, weights)
    return model, report


def _finetune(cfg: str, weights: Path, args: argparse.Namespace, project: Path) -> dict:
    """Train yolov8n-<cfg> (or the stock model) ``--finetune`` epochs from the stock weights; return its metrics."""
    model = YOLO("yolov8n.yaml" if cfg == "stock" else f"yolov8n-{cfg}.yaml")
    m = model.train(**_common(args), epochs=args.finetune, pretrained=str(weights), project=str(project),
                    name=f"ft-{cfg}", exist_ok=True, seed=0)
    return {"map50": float(m.box.map50), "map50_95": float(m.box.map)}


def main() -> dict:
    """Run the benchmark, print a table and write JSON.

    Returns:
        (dict): The results.
    """
    args = _args()
    project = Path(args.project or tempfile.mkdtemp(prefix="transfer-metrics-")).resolve()
    t0 = time.time()
    weights = _stock(args, project)
    nc = len(load_checkpoint(weights)[0].names)
    rows = {"stock": {"counts": None, "transfer": _val(YOLO(str(weights)), args, project)}}
    for cfg in CONFIGS:
        model, report = _transferred(cfg, weights, nc)
        counts = {"transferred": report.transferred, "target_total": report.target_total,
                  "source_total": report.source_total, "not_transferred": len(report.not_transferred),
                  "unused": len(report.unused)}
        rows[cfg] = {"counts": counts, "transfer": _val(model, args, project)}
    if args.finetune:
        for cfg in ["stock", *CONFIGS]:
            rows[cfg]["finetune"] = _finetune(cfg, weights, args, project)

    print(f"\n{'model':<7}{'transferred':>12}{'mAP50':>8}{'mAP50-95':>10}{'ft mAP50':>10}{'ft mAP50-95':>13}"
          f"   mean gate per attention row (mAP: right after transfer"
          f"{f'; ft: after {args.finetune} epochs from the stock weights' if args.finetune else ''})")
    for name, r in rows.items():
        c, tr, f = r["counts"], r["transfer"], r.get("finetune")
        counts = f"{c['transferred']}/{c['target_total']}" if c else "-"
        after = f"{f['map50']:>10.3f}{f['map50_95']:>13.3f}" if f else f"{'-':>10}{'-':>13}"
        gate = " ".join(f"{g:.2f}" for g in tr["mean_gate"].values()) or "-"
        print(f"{name:<7}{counts:>12}{tr['map50']:>8.3f}{tr['map50_95']:>10.3f}{after}   {gate}")
    res = {
        "stock_weights": str(weights), "stock_epochs": None if args.weights else args.epochs, "data": args.data,
        "imgsz": args.imgsz, "batch": args.batch, "finetune_epochs": args.finetune, "results": rows,
        "seconds": round(time.time() - t0, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
    }
    write_json(res, args.out)
    print(f"runs under {project}")
    return res


if __name__ == "__main__":
    main()
