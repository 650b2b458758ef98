"""Benchmark: cost of NAM's L1 penalty per optimizer step, as a ratio to the step time of YOLOv8n-NAM.

A training step here is forward + backward + Ultralytics' optimizer_step (unscale, clip, SGD step) on a batch of
random images; the penalty is the kit's ``add_penalty_grad`` on the penalised scale factors. Steps with and without
the penalty are interleaved in one run and the medians compared, so machine noise hits both alike.

    python benchmarks/nam_penalty_overhead.py [--batch 8] [--imgsz 320] [--repeats 15] [--scope nam] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import types

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch  # noqa: E402
from ultralytics.engine.trainer import BaseTrainer  # noqa: E402
from ultralytics.nn.tasks import DetectionModel  # noqa: E402

import yolo_attn  # noqa: E402, F401 - registers the blocks
from yolo_attn.bench.timing import interleaved, ratio_summary, timed  # noqa: E402
from yolo_attn.training.penalty import add_penalty_grad, penalized_parameters  # noqa: E402
from _results import write_json  # benchmarks/ is on sys.path when a script runs

__all__ = ["main"]


def _tensors(out) -> list[torch.Tensor]:
    """Flatten a head output (tensor, list, tuple or dict, possibly nested) into its tensors."""
    if isinstance(out, torch.Tensor):
        return [out]
    items = out.values() if isinstance(out, dict) else out
    return [t for o in items for t in _tensors(o)]


def main() -> dict:
    """Run the benchmark, print a table and write JSON.

    Returns:
        (dict): The results.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--scope", default="nam", choices=["nam", "all"])
    ap.add_argument("--out", default="benchmarks/results/nam_penalty_overhead.json")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = DetectionModel("yolov8n-nam.yaml", nc=10, verbose=False).train()
    params = penalized_parameters(model, args.scope)
    trainer = types.SimpleNamespace(model=model, ema=None, device=torch.device("cpu"),
                                    scaler=torch.amp.GradScaler("cpu", enabled=False))
    trainer.optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    step = types.MethodType(BaseTrainer.optimizer_step, trainer)
    x = torch.rand(args.batch, 3, args.imgsz, args.imgsz)

    def train_step(penalty: bool) -> float:
        out = model(x)  # training-mode head output: a dict (8.4) or a list of maps; nested lists flattened
        loss = sum(t.float().mean() for t in _tensors(out))
        loss.backward()
        t = timed(lambda: add_penalty_grad(params, 1e-4)) if penalty else 0.0
        step()
        return t

    pen_only = []
    times = interleaved({"plain": lambda: train_step(False), "penalty": lambda: pen_only.append(train_step(True))},
                    args.repeats, warmup=2)  # rotated rounds: each goes first in every other round
    plain, with_pen, pen_only = times["plain"], times["penalty"], pen_only[2:]  # drop the warm-up rounds' penalty times
    med = statistics.median
    res = {
        "model": "yolov8n-nam", "batch": args.batch, "imgsz": args.imgsz, "repeats": args.repeats, "scope": args.scope,
        "penalised_tensors": len(params), "penalised_values": sum(p.numel() for p in params),
        "step_s_median": med(plain), "step_with_penalty_s_median": med(with_pen), "penalty_s_median": med(pen_only),
        "penalty_over_step": med(pen_only) / med(plain),
        "step_ratio_with_over_without": med(with_pen) / med(plain),
        "step_ratio_spread": [min(w / p for w, p in zip(with_pen, plain)), max(w / p for w, p in zip(with_pen, plain))],
        "step_ratio_interval": ratio_summary(with_pen, plain)["interval"],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"{'quantity':<40}{'value':>14}")
    for k in ("step_s_median", "step_with_penalty_s_median", "penalty_s_median"):
        print(f"{k:<40}{res[k] * 1e3:>11.3f} ms")
    print(f"{'penalty / step (goal < 1%)':<40}{res['penalty_over_step']:>13.4%}")
    lo, hi = res["step_ratio_spread"]
    print(f"{'step with / without (min..max)':<40}{res['step_ratio_with_over_without']:>14.4f}  ({lo:.3f}..{hi:.3f})")
    write_json(res, args.out)
    return res


if __name__ == "__main__":
    main()
