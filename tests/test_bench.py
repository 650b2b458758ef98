"""The ablation benchmark: a tiny budgeted run writes a well-formed table, JSON and plot; bad arguments fail early."""

from __future__ import annotations

import json
import statistics

import cv2
import pytest
import ultralytics

from yolo_attn import run_bench
from yolo_attn.bench import estimate_train_s, plan_epochs
from yolo_attn.cli import main

MODELS = ["yolov8n.yaml", "yolov8n-se.yaml"]
SEEDS = [0, 1]
REPEATS = 3


def _check_spread(stats: dict, n: int) -> None:
    """A mean ± std summary over ``n`` seeds agrees with its own values."""
    assert len(stats["values"]) == n and all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in stats["values"])
    assert stats["mean"] == pytest.approx(statistics.fmean(stats["values"]))
    assert stats["std"] == pytest.approx(statistics.stdev(stats["values"]))


def test_bench_tiny_budget(tiny_data, tmp_path, capsys):
    """A budgeted run (probe, plan, 2 models x 2 seeds) returns and writes the same complete result, a Markdown
    table with one row per model, a PNG, and progress lines naming each model and seed."""
    out = tmp_path / "bench"
    result = run_bench(models=MODELS, seeds=SEEDS, budget=0.5, epochs=1, imgsz=64, batch=8, data=str(tiny_data),
                       device="cpu", latency_imgsz=64, latency_repeats=REPEATS, out=out)
    assert json.loads((out / "bench.json").read_text()) == json.loads(json.dumps(result))

    assert result["settings"]["epochs"] == 1 and result["settings"]["budget"] == 0.5  # the cap bounds the plan
    assert set(result["plan"]["probes"]) == set(MODELS)
    assert all(p["train_s"] >= p["epoch_s"] > 0 for p in result["plan"]["probes"].values())
    assert isinstance(result["environment"]["cpu"], str) and result["environment"]["torch_threads"] >= 1
    assert result["nc"] == 10

    stock, se = result["models"]
    assert [row["model"] for row in result["models"]] == MODELS
    assert stock["block"] == "none" and se["block"] == "SE x4"
    assert isinstance(stock["params"], int) and se["params"] > stock["params"] > 0
    assert se["gflops"] > stock["gflops"] > 0
    ref_ms = stock["latency_ms"]["per_round"]
    assert stock["latency_ratio"]["per_round"] == [1.0] * REPEATS
    assert stock["latency_ratio"]["median"] == stock["latency_ratio"]["q25"] == stock["latency_ratio"]["q75"] == 1.0
    for row in result["models"]:
        ms, ratio = row["latency_ms"], row["latency_ratio"]
        assert len(ms["per_round"]) == REPEATS and all(t > 0 for t in ms["per_round"])
        assert ratio["per_round"] == pytest.approx([t / t0 for t, t0 in zip(ms["per_round"], ref_ms)])
        assert ratio["q25"] <= ratio["median"] <= ratio["q75"]
        assert ms["median"] == pytest.approx(statistics.median(ms["per_round"]))
        _check_spread(row["map50"], len(SEEDS))
        _check_spread(row["map50_95"], len(SEEDS))
        assert [r["seed"] for r in row["runs"]] == SEEDS
        assert [r["map50_95"] for r in row["runs"]] == row["map50_95"]["values"]
        for run in row["runs"]:
            assert (out / "runs" / f"{row['model'][:-5]}-seed{run['seed']}" / "weights" / "best.pt").is_file()
    assert not list((out / "runs").glob("probe-*"))  # probes are timing runs, not results

    md = (out / "bench.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| model |"))
    rows = [line for line in md if line.startswith("| yolov8n")]
    assert [r.split("|")[1].strip() for r in rows] == MODELS
    assert all(r.count("|") == header.count("|") for r in rows)
    md = "\n".join(md)
    assert f"Ultralytics {ultralytics.__version__}" in md and "yolo_attn.run_bench(" in md
    image = cv2.imread(str(out / "bench.png"))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100

    printed = capsys.readouterr().out
    assert "[plan]" in printed
    for k, (seed, model) in enumerate([(s, m) for s in SEEDS for m in MODELS], 1):
        assert f"[{k}/4] {model} seed {seed}: training" in printed


@pytest.mark.parametrize("available", [0.0, 50.0, 96.0, 107.9, 1e6])
def test_plan_epochs_fits_budget(available):
    """The chosen epochs are the most whose estimated training time fits, clamped to [1, max_epochs]."""
    probes = {"a": {"train_s": 10.0, "epoch_s": 2.0}, "b": {"train_s": 20.0, "epoch_s": 4.0}}
    n = plan_epochs(probes, 2, available, max_epochs=50)
    assert 1 <= n <= 50
    if n > 1:
        assert estimate_train_s(probes, 2, n) <= available
    if n < 50:
        assert estimate_train_s(probes, 2, n + 1) > available


@pytest.mark.parametrize(
    "args, message",
    [
        (["seeds=a,b"], "seeds must be a comma-separated list of integers"),
        (["seeds=0,0"], "seeds must be distinct"),
        (["seeds=-1"], "each seed must be an integer >= 0"),
        (["budget=-5"], "budget must be a number of minutes > 0"),
        (["budget=soon"], "budget must be a number of minutes"),
        (["epochs=0"], "epochs must be an integer >= 1"),
        (["latency_imgsz=100"], "latency_imgsz must be an integer >= 32 and a multiple of 32"),
        (["models=yolov8n.pt"], "is not a model YAML"),
        (["colour=red"], "unknown option"),
    ],
)
def test_cli_bench_rejects_bad_values(args, message, tmp_path):
    """`yolo-attn bench` rejects bad values with a message naming the option, before doing any work."""
    with pytest.raises(SystemExit, match=message):
        main(["bench", *args, f"out={tmp_path / 'b'}"])
    assert not (tmp_path / "b").exists()


def test_cli_bench_unknown_model(tiny_data, tmp_path):
    """A model that cannot be built is named before any training starts."""
    with pytest.raises(SystemExit, match=r"'nosuch\.yaml' could not be built.*yolo-attn list"):
        main(["bench", "models=nosuch.yaml,yolov8n.yaml", f"data={tiny_data}", f"out={tmp_path / 'b'}"])
    assert not (tmp_path / "b").exists()
