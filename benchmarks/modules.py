"""Benchmark: each attention block against the memory-bound floor, at the feature maps YOLOv8n feeds it.

The shapes are read off the ready-made configs: each ``yolov8n-<block>.yaml`` is built and run once at 640 px with
hooks on its blocks (for scale n: (B,32,160,160), (B,64,80,80), (B,128,40,40), (B,256,20,20)). At every shape and
batch, these are timed in one interleaved loop (one call of each per round in a shuffled order, the median over
rounds reported):

- floor: ``x.clone()``, one elementwise read+write pass that allocates its output, as every block must. A copy into
  a preallocated tensor is recorded too (``floor_out_ms``); it leaves out the allocation, which for tensors above
  glibc's 32 MB mmap threshold means fresh zero-filled pages and costs more than the copy itself.
- sigmoid: ``torch.sigmoid(x)``, one pass with one exp per element: what any sigmoid gate pays at least.
- each block in eval mode under ``torch.inference_mode()`` (as ``predict``/``val``), NAM unfused and fused;
- each block in training mode, forward + backward (gradient for the input and the parameters).

Ratios are to the floor of the same round. A small whole-model check follows: stock YOLOv8n against each
ready-made config, 640 px, batch 1, eval, fused, interleaved, median latency ratio; then where DAS spends its time.

    python benchmarks/modules.py [--batches 1,16] [--repeats 15] [--threads N] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torchvision.ops import deform_conv2d  # noqa: E402
from ultralytics.nn.tasks import DetectionModel  # noqa: E402

import yolo_attn  # noqa: E402, F401 - registers the blocks and the fuse hook
from yolo_attn.bench.timing import interleaved, ratio_summary  # noqa: E402
from yolo_attn.modules import DAS, NAM, SE, SimAM  # noqa: E402
from yolo_attn.modules.das import deform_conv2d_sampled  # noqa: E402
from _results import write_json  # benchmarks/ is on sys.path when a script runs

__all__ = ["main"]

CONFIGS = {"NAM": "nam", "SimAM": "simam", "SE": "se", "DAS": "das"}


def block_shapes(imgsz: int = 640) -> list[tuple[int, int, int]]:
    """Return the (C, H, W) inputs of the kit blocks in yolov8n-nam.yaml at ``imgsz``, checked equal in every config.

    Args:
        imgsz (int): Input image size.

    Returns:
        (list[tuple[int, int, int]]): One (C, H, W) per block, in model order.
    """
    found = {}
    for name, cfg in CONFIGS.items():
        model = DetectionModel(f"yolov8n-{cfg}.yaml", verbose=False).eval()
        shapes = []
        for m in model.modules():
            if isinstance(m, (NAM, SimAM, SE, DAS)):
                m.register_forward_hook(lambda mod, inp, out, s=shapes: s.append(tuple(inp[0].shape[1:])))
        with torch.inference_mode():
            model(torch.zeros(1, 3, imgsz, imgsz))
        found[name] = shapes
    first = next(iter(found.values()))
    if any(s != first for s in found.values()):
        raise RuntimeError(f"the ready-made configs feed their blocks different shapes: {found}")
    return first


def _stats(t: list[float], floor: list[float]) -> dict:
    """Median ms, spread (half the interquartile range, % of the median), and the median per-round ratio to floor."""
    q = statistics.quantiles(t, n=4) if len(t) > 1 else [t[0]] * 3
    med = statistics.median(t)
    ratios = [a / b for a, b in zip(t, floor)]
    return {"ms": med * 1e3, "spread_pct": 50 * (q[2] - q[0]) / med, "ratio": statistics.median(ratios)}


def make_blocks(c: int) -> dict[str, nn.Module]:
    """Return the blocks at ``c`` channels, NAM with non-trivial BN statistics (unfused and fused)."""
    torch.manual_seed(0)
    nam = NAM(c)
    with torch.no_grad():
        nam.bn.running_mean.normal_(0, 0.3)
        nam.bn.running_var.uniform_(0.5, 2.0)
    nam_fused = NAM(c)
    nam_fused.load_state_dict(nam.state_dict())
    return {"NAM": nam, "NAM (fused)": nam_fused.eval().fuse(), "SimAM": SimAM(c), "SE": SE(c), "DAS": DAS(c)}


def bench_shape(c: int, h: int, w: int, batch: int, repeats: int) -> list[dict]:
    """Eval and train timings of every block at one shape and batch.

    Args:
        c (int): Channels.
        h (int): Height.
        w (int): Width.
        batch (int): Batch size.
        repeats (int): Timed rounds.

    Returns:
        (list[dict]): One row per block.
    """
    x = torch.randn(batch, c, h, w)
    out = torch.empty_like(x)
    blocks = make_blocks(c)
    with torch.inference_mode():
        for m in blocks.values():
            m.eval()
        fns = {"floor": lambda: x.clone(), "floor_out": lambda: out.copy_(x), "sigmoid": lambda: torch.sigmoid(x)}
        fns.update({k: (lambda m=m: m(x)) for k, m in blocks.items()})
        ev = interleaved(fns, repeats, order="shuffle")
    xg = x.clone().requires_grad_()
    gy = torch.ones_like(x)
    trainable = {k: m.train() for k, m in blocks.items() if k != "NAM (fused)"}  # train() unfuses; same as NAM
    fns = {"floor": lambda: x.clone()}
    fns.update({k: (lambda m=m: m(xg).backward(gy)) for k, m in trainable.items()})
    tr = interleaved(fns, repeats, order="shuffle")
    rows = []
    for k in blocks:
        row = {"block": k, "shape": [batch, c, h, w], "floor_ms": statistics.median(ev["floor"]) * 1e3,
               "floor_out_ms": statistics.median(ev["floor_out"]) * 1e3,
               "sigmoid_ms": statistics.median(ev["sigmoid"]) * 1e3, "eval": _stats(ev[k], ev["floor"]),
               "eval_over_sigmoid": statistics.median(a / b for a, b in zip(ev[k], ev["sigmoid"]))}
        row["train"] = _stats(tr[k], tr["floor"]) if k in tr else None
        rows.append(row)
    return rows


def bench_models(repeats: int, imgsz: int = 640) -> list[dict]:
    """Median eval latency of fused YOLOv8n and each ready-made config at batch 1, and the ratio to stock.

    Args:
        repeats (int): Timed rounds.
        imgsz (int): Input size.

    Returns:
        (list[dict]): One row per model.
    """
    models = {"yolov8n": DetectionModel("yolov8n.yaml", verbose=False)}
    models.update({f"yolov8n-{c}": DetectionModel(f"yolov8n-{c}.yaml", verbose=False) for c in CONFIGS.values()})
    x = torch.rand(1, 3, imgsz, imgsz)
    for m in models.values():
        m.eval().fuse(verbose=False)
    with torch.inference_mode():
        t = interleaved({k: (lambda m=m: m(x)) for k, m in models.items()}, repeats, warmup=2, order="shuffle")
    return [{"model": k, **_stats(v, t["yolov8n"]), "ratio_interval": ratio_summary(v, t["yolov8n"])["interval"]}
            for k, v in t.items()]


def das_breakdown(c: int, h: int, w: int, repeats: int) -> dict:
    """Where DAS's eval forward goes at one shape (batch 1): ms per stage, torchvision's kernel for comparison.

    Args:
        c (int): Channels.
        h (int): Height.
        w (int): Width.
        repeats (int): Timed rounds.

    Returns:
        (dict): Stage -> median ms.
    """
    m = DAS(c).eval()
    x = torch.randn(1, c, h, w)
    with torch.inference_mode():
        with torch.no_grad():
            nn.init.normal_(m.offset.weight, 0, 0.1)  # non-zero offsets, as after training
        hid = m.act(m._instance_norm(m.pw(m.dw(x))))
        off = torch.nan_to_num(m.offset(hid), nan=0.0)
        g = deform_conv2d_sampled(hid, off, m.weight, m.bias)
        fns = {
            "dw+pw+IN+GELU": lambda: m.act(m._instance_norm(m.pw(m.dw(x)))),
            "offset conv": lambda: m.offset(hid),
            "nan_to_num+clamp": lambda: torch.nan_to_num(off, nan=0.0).clamp(-h - 3, h + 3),
            "deform (sampled)": lambda: deform_conv2d_sampled(hid, off, m.weight, m.bias),
            "deform (torchvision)": lambda: deform_conv2d(hid, off, m.weight, m.bias, padding=1),
            "LN_C+sigmoid": lambda: m._channel_layer_norm(g.clone()).sigmoid_(),
            "total": lambda: m(x),
        }
        t = interleaved(fns, repeats, order="shuffle")
    return {k: statistics.median(v) * 1e3 for k, v in t.items()}


def main() -> dict:
    """Run the benchmark, print Markdown tables and write JSON.

    Returns:
        (dict): The results.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    ap.add_argument("--repeats", type=int, default=15, help="timed rounds per measurement")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="3 rounds (5 for whole models): a first look in ~2 minutes")
    ap.add_argument("--no-models", action="store_true", help="skip the whole-model latency check")
    ap.add_argument("--out", default="benchmarks/results/modules.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else args.repeats
    batches = [int(b) for b in args.batches.split(",")]

    shapes = block_shapes()
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
            "repeats": repeats, "batches": batches, "shapes_chw": shapes}
    print(f"torch {meta['torch']}, {meta['threads']} threads, {meta['cpus']} cpus; median of {repeats} rounds")
    print("ratio = block / floor (x.clone()) in the same round; spread = half the IQR in % of the median\n")
    print("| block | input | floor ms | eval ms (spread) | eval / floor | eval / sigmoid | train fwd+bwd ms "
          "| train / floor |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for batch in batches:
        for c, h, w in shapes:
            for r in bench_shape(c, h, w, batch, repeats):
                rows.append(r)
                e, t = r["eval"], r["train"]
                tr = f"{t['ms']:.2f} ({t['spread_pct']:.0f}%) | {t['ratio']:.1f}" if t else "- | -"
                ev = f"{e['ms']:.3f} ({e['spread_pct']:.0f}%) | {e['ratio']:.1f} | {r['eval_over_sigmoid']:.1f}"
                print(f"| {r['block']} | {batch}x{c}x{h}x{w} | {r['floor_ms']:.3f} | {ev} | {tr} |", flush=True)
    res = {"meta": meta, "blocks": rows}

    res["das_breakdown"] = {f"1x{c}x{h}x{w}": das_breakdown(c, h, w, repeats) for c, h, w in shapes}
    stages = list(next(iter(res["das_breakdown"].values())))
    print("\nDAS eval forward, batch 1, ms per stage:\n")
    print("| input | " + " | ".join(stages) + " |")
    print("|---|" + "---:|" * len(stages))
    for k, v in res["das_breakdown"].items():
        print(f"| {k} | " + " | ".join(f"{v[s]:.2f}" for s in stages) + " |")

    if not args.no_models:
        res["models"] = bench_models(5 if args.quick else args.repeats)
        print("\nWhole model, 640 px, batch 1, eval, fused:\n")
        print("| model | ms (spread) | ratio to yolov8n [95% CI of the median] |\n|---|---:|---:|")
        for r in res["models"]:
            ci = "[{:.3f}, {:.3f}]".format(*r["ratio_interval"]) if r["ratio_interval"] else "(too few rounds)"
            print(f"| {r['model']} | {r['ms']:.1f} ({r['spread_pct']:.0f}%) | {r['ratio']:.3f} {ci} |")

    write_json(res, args.out)
    return res


if __name__ == "__main__":
    main()
