"""Benchmark: slim end to end. Sparsity training -> prune at two ratios -> fine-tune -> measure.

For each model (default stock ``yolov8n.yaml`` and ``yolov8n-nam.yaml``) and seed, on the built-in digits data:

1. train with the L1 penalty on every BatchNorm scale (``nam_penalty_scope=all``, the network-slimming setting);
2. prune the final weights with ``yolo_attn.prune`` at each ratio (default 0.3 and 0.5);
3. fine-tune each pruned checkpoint with the stock trainer (``YOLO("pruned.pt").train``, no penalty);
4. measure parameters, GFLOPs (640 px), the CPU latency ratio pruned / unpruned (both fused, batch 1, 640 px, eval,
   interleaved rounds, median of the per-round ratios), and mAP50 / mAP50-95 before pruning, right after
   pruning and after fine-tuning.

Prints a markdown table (mean +- spread over seeds) and writes JSON. Small settings run in minutes on a laptop:

    python benchmarks/slim.py [--models yolov8n.yaml,yolov8n-nam.yaml] [--seeds 0,1] [--ratios 0.3,0.5]
        [--epochs 30] [--ft-epochs 10] [--p 5e-2] [--n-train 256] [--n-val 64] [--imgsz 160] [--batch 16]
        [--latency-rounds 20] [--latency-imgsz 640] [--out benchmarks/results/slim.json]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from ultralytics import YOLO  # noqa: E402

import yolo_attn  # noqa: E402 - registers the blocks, the penalty callbacks and the slim rebuild hook
from yolo_attn.bench.timing import interleaved, ratio_summary  # noqa: E402
from yolo_attn.data import make_digits_dataset  # noqa: E402
from _results import write_json  # benchmarks/ is on sys.path when a script runs

__all__ = ["latency", "main"]


def train(model: str, data: str, project: str, name: str, epochs: int, p: float, args: argparse.Namespace,
          seed: int) -> Path:
    """Train ``model`` (YAML or checkpoint) with penalty ``p`` on every BN scale; return its last.pt."""
    yolo = yolo_attn.set_nam_penalty(YOLO(model), p, scope="all")
    yolo.train(data=data, epochs=epochs, imgsz=args.imgsz, batch=args.batch, optimizer="SGD", lr0=args.lr0,
               warmup_epochs=min(1, epochs - 1), val=False, plots=False, workers=0, device="cpu", amp=False,
               seed=seed, deterministic=True, verbose=False, project=project, name=name, exist_ok=True)
    return Path(project) / name / "weights" / "last.pt"


def val_map(weights: Path, data: str, args: argparse.Namespace, project: str) -> tuple[float, float]:
    """Validate a checkpoint; return (mAP50, mAP50-95)."""
    m = YOLO(str(weights)).val(data=data, imgsz=args.imgsz, batch=16, device="cpu", workers=0, plots=False,
                                verbose=False, project=project, name="val", exist_ok=True)
    return float(m.box.map50), float(m.box.map)


def params(weights: Path) -> int:
    """Return the parameter count of a checkpoint."""
    return sum(p.numel() for p in YOLO(str(weights)).model.parameters())


@torch.inference_mode()
def latency(dense: nn.Module, pruned: nn.Module, imgsz: int = 640, rounds: int = 20) -> dict:
    """Time both networks in interleaved rounds (the shared helper); return medians and the pruned / dense ratio.

    Args:
        dense (nn.Module): The unpruned network, fused, eval.
        pruned (nn.Module): The pruned network, fused, eval.
        imgsz (int): Square input size (batch 1).
        rounds (int): Timed rounds; each runs both once, in alternating order.

    Returns:
        (dict): ``dense_ms``, ``pruned_ms`` (medians), ``ratio`` (median of per-round ratios) and its ``interval``.
    """
    x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    times = interleaved({"dense": lambda: dense(x), "pruned": lambda: pruned(x)}, rounds, warmup=2)
    summary = ratio_summary(times["pruned"], times["dense"])
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    return {"dense_ms": ms["dense"], "pruned_ms": ms["pruned"], "ratio": summary["median"],
            "interval": summary["interval"]}


def fused(weights: Path) -> nn.Module:
    """Return a checkpoint's network, float32, fused, eval."""
    return copy.deepcopy(YOLO(str(weights)).model).float().fuse().eval()


def run_seed(model: str, seed: int, data: str, tmp: Path, args: argparse.Namespace) -> list[dict]:
    """Sparsity-train one model with one seed, prune at every ratio, fine-tune, measure; one row per ratio."""
    tag = f"{Path(model).stem}-s{seed}"
    project = str(tmp / "runs")
    dense = train(model, data, project, f"{tag}-sparse", args.epochs, args.p, args, seed)
    before = val_map(dense, data, args, project)
    rows = []
    for ratio in args.ratios:
        pruned = tmp / f"{tag}-r{ratio:g}.pt"
        report = yolo_attn.prune(dense, ratio=ratio, out=pruned, imgsz=args.latency_imgsz)
        after_prune = val_map(pruned, data, args, project)
        tuned = train(str(pruned), data, project, f"{tag}-r{ratio:g}-ft", args.ft_epochs, 0.0, args, seed)
        after_ft = val_map(tuned, data, args, project)
        threads = torch.get_num_threads()
        torch.set_num_threads(args.threads or threads)  # latency only: training keeps torch's default
        lat = latency(fused(dense), fused(pruned), args.latency_imgsz, args.latency_rounds)
        torch.set_num_threads(threads)
        rows.append({
            "model": model, "seed": seed, "ratio": ratio,
            "params": report.params[0], "params_pruned": report.params[1], "params_finetuned": params(tuned),
            "gflops": report.gflops[0], "gflops_pruned": report.gflops[1],
            "latency_ms": lat["dense_ms"], "latency_ms_pruned": lat["pruned_ms"], "latency_ratio": lat["ratio"],
            "latency_ratio_interval": lat["interval"],
            "map50": before[0], "map50_95": before[1],
            "map50_pruned": after_prune[0], "map50_95_pruned": after_prune[1],
            "map50_ft": after_ft[0], "map50_95_ft": after_ft[1],
        })
        print(rows[-1], flush=True)
    return rows


def _stat(rows: list[dict], key: str, fmt: str = ".3f") -> str:
    """Return ``mean +- half range`` of ``key`` over rows (just the value for one row)."""
    v = [r[key] for r in rows]
    mean = sum(v) / len(v)
    return f"{mean:{fmt}}" if len(v) == 1 else f"{mean:{fmt}} +- {(max(v) - min(v)) / 2:{fmt}}"


def table(rows: list[dict]) -> str:
    """Format the results as a markdown table, one line per (model, ratio), seeds aggregated."""
    lines = [
        "| model | ratio | params | GFLOPs | latency ratio | mAP50 before | after prune | after FT | "
        "mAP50-95 before | after prune | after FT |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["model"], r["ratio"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for model, ratio in keys:
        rs = [r for r in rows if r["model"] == model and r["ratio"] == ratio]
        p0, p1 = rs[0]["params"], sum(r["params_pruned"] for r in rs) / len(rs)
        g0, g1 = rs[0]["gflops"], sum(r["gflops_pruned"] for r in rs) / len(rs)
        lines.append(
            f"| {model} | {ratio:g} | {p0 / 1e6:.2f}M -> {p1 / 1e6:.2f}M ({p1 / p0 - 1:+.0%}) | "
            f"{g0:.1f} -> {g1:.1f} | {_stat(rs, 'latency_ratio', '.2f')} | {_stat(rs, 'map50')} | "
            f"{_stat(rs, 'map50_pruned')} | {_stat(rs, 'map50_ft')} | {_stat(rs, 'map50_95')} | "
            f"{_stat(rs, 'map50_95_pruned')} | {_stat(rs, 'map50_95_ft')} |"
        )
    return "\n".join(lines)


def main() -> dict:
    """Run the benchmark, print a markdown table and write JSON.

    Returns:
        (dict): The results.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="yolov8n.yaml,yolov8n-nam.yaml")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--ratios", default="0.3,0.5")
    ap.add_argument("--epochs", type=int, default=30, help="sparsity-training epochs")
    ap.add_argument("--ft-epochs", type=int, default=10, help="fine-tuning epochs after pruning")
    ap.add_argument("--p", type=float, default=5e-2, help="L1 penalty on every BN scale (SGD; see sparsity.py)")
    ap.add_argument("--lr0", type=float, default=0.01)
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-val", type=int, default=64)
    ap.add_argument("--imgsz", type=int, default=160)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--latency-rounds", type=int, default=20)
    ap.add_argument("--latency-imgsz", type=int, default=640)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads for the latency timing (0: default)")
    ap.add_argument("--out", default="benchmarks/results/slim.json")
    args = ap.parse_args()
    args.ratios = [float(r) for r in args.ratios.split(",")]

    rows = []
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="yolo-attn-slim-") as tmp:
        data = str(make_digits_dataset(Path(tmp) / "digits", n_train=args.n_train, n_val=args.n_val, imgsz=args.imgsz,
                                       seed=0))
        for model in args.models.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                rows += run_seed(model, seed, data, Path(tmp), args)
    text = table(rows)
    print(f"\nsparsity training {args.epochs} epochs (SGD, p={args.p:g} on every BN scale), fine-tuning "
          f"{args.ft_epochs} epochs, {args.n_train} images at {args.imgsz} px; seeds {args.seeds}; latency: fused, "
          f"batch 1, {args.latency_imgsz} px, CPU, {args.latency_rounds} interleaved rounds\n\n{text}")
    res = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"}, "rows": rows, "table": text,
        "seconds": round(time.perf_counter() - t),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
                   f"latency on {args.threads or torch.get_num_threads()} threads",
        "date": time.strftime("%Y-%m-%d"),
    }
    write_json(res, args.out)
    return res


if __name__ == "__main__":
    main()
