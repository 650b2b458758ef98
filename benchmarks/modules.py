"""Benchmark: each attention block against the memory-bound floor, at the feature maps YOLOv8n feeds it.

The blocks come from the registry (every registered block, including ones added later), each with its ready-made
config ``yolov8n-<name>.yaml`` (blocks without one are skipped) and, for blocks that fold for inference
(``can_fuse()``), a fused variant too. The shapes are read off the configs: each is built and run once at 640 px
with hooks on its blocks (for scale n and a gate at the end of each backbone stage: (B,32,160,160), (B,64,80,80),
(B,128,40,40), (B,256,20,20)). At every shape and batch, these are timed in one interleaved loop (one call of each
per round in a shuffled order, the median over rounds reported):

- floor: ``x.clone()``, one elementwise read+write pass that allocates its output, as every block must. A copy into
  a preallocated tensor is recorded too (``floor_out_ms``); it leaves out the allocation, which for tensors above
  glibc's 32 MB mmap threshold means fresh zero-filled pages and costs more than the copy itself.
- sigmoid: ``torch.sigmoid(x)``, one pass with one exp per element: what any sigmoid gate pays at least.
- each block in eval mode under ``torch.inference_mode()`` (as ``predict``/``val``), unfused and fused;
- each block in training mode, forward + backward (gradient for the input and the parameters).

Block parameters and BatchNorm running statistics are randomised (``_randomise``), as after training, so that
data-dependent paths (e.g. deformable sampling offsets, which start at zero) do real work. Ratios are to the floor of
the same round. Then where each block's eval forward spends its time (batch 1, the operators with the most self CPU
time, from ``torch.profiler``), and a whole-model check: stock YOLOv8n against a second copy of itself (the A/A row:
the noise floor of the ratios) and each ready-made config, 640 px, batch 1, eval, fused, interleaved, median latency
ratio with its 95% interval.

    python benchmarks/modules.py [--batches 1,16] [--repeats 15] [--threads N] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from ultralytics.nn.tasks import DetectionModel  # noqa: E402

import yolo_attn  # noqa: E402 - registers the blocks and the fuse hook
from yolo_attn.bench.timing import interleaved, ratio_summary  # noqa: E402
from _results import write_json  # benchmarks/ is on sys.path when a script runs

__all__ = ["main"]


def configs() -> dict[str, str]:
    """Return registered block name -> its ready-made scale-n config, for every block that has one.

    Returns:
        (dict[str, str]): E.g. ``{"<Name>": "yolov8n-<name>.yaml", ...}``, in registry order.
    """
    return {name: f"yolov8n-{name.lower()}.yaml" for name, _ in yolo_attn.BLOCKS.items()
            if yolo_attn.find_config(f"yolov8-{name.lower()}.yaml")}


def block_shapes(cfgs: dict[str, str], imgsz: int = 640) -> dict[str, list[tuple[int, int, int]]]:
    """Return the (C, H, W) inputs of the kit blocks in each config at ``imgsz``.

    Args:
        cfgs (dict[str, str]): Block name -> config, as :func:`configs`.
        imgsz (int): Input image size.

    Returns:
        (dict[str, list[tuple[int, int, int]]]): Block name -> one (C, H, W) per block in the model, in model order.
    """
    kit = tuple(yolo_attn.BLOCKS.classes())
    found = {}
    for name, cfg in cfgs.items():
        model = DetectionModel(cfg, verbose=False).eval()
        shapes = []
        for m in model.modules():
            if isinstance(m, kit):
                m.register_forward_hook(lambda mod, inp, out, s=shapes: s.append(tuple(inp[0].shape[1:])))
        with torch.inference_mode():
            model(torch.zeros(1, 3, imgsz, imgsz))
        found[name] = list(dict.fromkeys(shapes))  # a shape met twice is timed once
    return found


def _stats(t: list[float], floor: list[float]) -> dict:
    """Median ms, spread (half the interquartile range, % of the median), and the median per-round ratio to floor."""
    q = statistics.quantiles(t, n=4) if len(t) > 1 else [t[0]] * 3
    med = statistics.median(t)
    ratios = [a / b for a, b in zip(t, floor)]
    return {"ms": med * 1e3, "spread_pct": 50 * (q[2] - q[0]) / med, "ratio": statistics.median(ratios)}


def _randomise(block: nn.Module) -> nn.Module:
    """Give a block random parameters and BatchNorm statistics (seeded), so every data-dependent path does work."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in block.named_parameters():
            scale = name.endswith("weight") and p.dim() == 1  # norm scales around 1, everything else around 0
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + float(scale))
        for m in block.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.normal_(0, 0.3, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    return block


def make_blocks(names: list[str], c: int) -> dict[str, nn.Module]:
    """Return the named blocks at ``c`` channels, randomised, plus a fused copy of those that fold for inference.

    Args:
        names (list[str]): Registered block names.
        c (int): Channels.

    Returns:
        (dict[str, nn.Module]): Label -> block (``"<name> (fused)"`` for the fused copies).
    """
    blocks = {}
    for name in names:
        cls = yolo_attn.BLOCKS.get(name)
        blocks[name] = _randomise(cls(c))
        if cls.can_fuse():
            blocks[f"{name} (fused)"] = copy.deepcopy(blocks[name]).eval().fuse()
    return blocks


def bench_shape(names: list[str], c: int, h: int, w: int, batch: int, repeats: int) -> list[dict]:
    """Eval and train timings of the named blocks at one shape and batch.

    Args:
        names (list[str]): Registered block names fed this shape by their configs.
        c (int): Channels.
        h (int): Height.
        w (int): Width.
        batch (int): Batch size.
        repeats (int): Timed rounds.

    Returns:
        (list[dict]): One row per block (and fused variant).
    """
    x = torch.randn(batch, c, h, w)
    out = torch.empty_like(x)
    blocks = make_blocks(names, c)
    with torch.inference_mode():
        for m in blocks.values():
            m.eval()
        fns = {"floor": lambda: x.clone(), "floor_out": lambda: out.copy_(x), "sigmoid": lambda: torch.sigmoid(x)}
        fns.update({k: (lambda m=m: m(x)) for k, m in blocks.items()})
        ev = interleaved(fns, repeats, order="shuffle")
    xg = x.clone().requires_grad_()
    gy = torch.ones_like(x)
    trainable = {k: m.train() for k, m in blocks.items() if k in names}  # fused copies: train() would unfuse them
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


def bench_models(cfgs: dict[str, str], repeats: int, imgsz: int = 640) -> list[dict]:
    """Median eval latency of fused YOLOv8n, a second copy of it (A/A) and each config at batch 1, ratio to stock.

    Args:
        cfgs (dict[str, str]): Block name -> config, as :func:`configs`.
        repeats (int): Timed rounds.
        imgsz (int): Input size.

    Returns:
        (list[dict]): One row per model.
    """
    models = {"yolov8n": DetectionModel("yolov8n.yaml", verbose=False),
              "yolov8n (A/A copy)": DetectionModel("yolov8n.yaml", verbose=False)}
    models.update({cfg.removesuffix(".yaml"): DetectionModel(cfg, verbose=False) for cfg in cfgs.values()})
    x = torch.rand(1, 3, imgsz, imgsz)
    for m in models.values():
        m.eval().fuse(verbose=False)
    with torch.inference_mode():
        t = interleaved({k: (lambda m=m: m(x)) for k, m in models.items()}, repeats, warmup=2, order="shuffle")
    return [{"model": k, **_stats(v, t["yolov8n"]), "ratio_interval": ratio_summary(v, t["yolov8n"])["interval"]}
            for k, v in t.items()]


def op_profile(names: list[str], c: int, h: int, w: int, calls: int, top: int = 5) -> dict[str, list[list]]:
    """Where each block's eval forward goes at one shape (batch 1): the operators with the most self CPU time.

    Args:
        names (list[str]): Registered block names.
        c (int): Channels.
        h (int): Height.
        w (int): Width.
        calls (int): Profiled calls per block (after one warm-up call).
        top (int): Operators listed per block.

    Returns:
        (dict[str, list[list]]): Block label -> ``[operator, ms per call, % of the block's self CPU time]`` rows.
    """
    x = torch.randn(1, c, h, w)
    res = {}
    with torch.inference_mode():
        for k, m in make_blocks(names, c).items():
            m.eval()(x)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                for _ in range(calls):
                    m(x)
            ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
            total = sum(e.self_cpu_time_total for e in ops) or 1.0
            res[k] = [[e.key, e.self_cpu_time_total / calls / 1e3, 100 * e.self_cpu_time_total / total]
                      for e in ops[:top]]
    return res


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

    cfgs = configs()
    per_block = block_shapes(cfgs)
    shapes = list(dict.fromkeys(s for v in per_block.values() for s in v))  # every shape once, in model order
    fed = {s: [n for n in cfgs if s in per_block[n]] for s in shapes}  # shape -> blocks whose config feeds it
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
            "repeats": repeats, "batches": batches, "configs": cfgs,
            "shapes_chw": {n: [list(s) for s in v] for n, v in per_block.items()}}
    print(f"torch {meta['torch']}, {meta['threads']} threads, {meta['cpus']} cpus; median of {repeats} rounds")
    print(f"blocks (registry, with a ready-made config): {', '.join(cfgs)}")
    print("ratio = block / floor (x.clone()) in the same round; spread = half the IQR in % of the median\n")
    print("| block | input | floor ms | eval ms (spread) | eval / floor | eval / sigmoid | train fwd+bwd ms "
          "| train / floor |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for batch in batches:
        for (c, h, w), names in fed.items():
            for r in bench_shape(names, c, h, w, batch, repeats):
                rows.append(r)
                e, t = r["eval"], r["train"]
                tr = f"{t['ms']:.2f} ({t['spread_pct']:.0f}%) | {t['ratio']:.1f}" if t else "- | -"
                ev = f"{e['ms']:.3f} ({e['spread_pct']:.0f}%) | {e['ratio']:.1f} | {r['eval_over_sigmoid']:.1f}"
                print(f"| {r['block']} | {batch}x{c}x{h}x{w} | {r['floor_ms']:.3f} | {ev} | {tr} |", flush=True)
    res = {"meta": meta, "blocks": rows}

    res["op_profile"] = {f"1x{c}x{h}x{w}": op_profile(names, c, h, w, repeats) for (c, h, w), names in fed.items()}
    print("\nEval forward, batch 1: operators with the most self CPU time (ms per call, % of the block):\n")
    print("| block | input | operators |\n|---|---|---|")
    for shape, blocks in res["op_profile"].items():
        for k, ops in blocks.items():
            print(f"| {k} | {shape} | " + ", ".join(f"{op} {ms:.3f} ({pct:.0f}%)" for op, ms, pct in ops) + " |")

    if not args.no_models:
        res["models"] = bench_models(cfgs, 5 if args.quick else args.repeats)
        print("\nWhole model, 640 px, batch 1, eval, fused (A/A: stock against a second copy of itself):\n")
        print("| model | ms (spread) | ratio to yolov8n [95% CI of the median] |\n|---|---:|---:|")
        for r in res["models"]:
            ci = "[{:.3f}, {:.3f}]".format(*r["ratio_interval"]) if r["ratio_interval"] else "(too few rounds)"
            print(f"| {r['model']} | {r['ms']:.1f} ({r['spread_pct']:.0f}%) | {r['ratio']:.3f} {ci} |")

    write_json(res, args.out)
    return res


if __name__ == "__main__":
    main()
