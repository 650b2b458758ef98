"""The ablation benchmark: a tiny budgeted run writes a well-formed table, JSON and plot; the statistics match hand
computations; options, presets and the default model list come from one place; bad arguments fail early."""

from __future__ import annotations

import inspect
import json
import math
import statistics
import subprocess

import cv2
import pytest
import torch
import ultralytics
from conftest import ROOT

from yolo_attn import run_bench
from yolo_attn.bench import (
    OPTIONS,
    BenchSettingsError,
    PRESETS,
    check_settings,
    default_models,
    estimate_train_s,
    measure_latency,
    median_interval,
    paired_difference,
    plan_epochs,
    select_preset,
    t_interval,
    usage,
)
from yolo_attn.bench.stats import NO_DIFFERENCE
from yolo_attn.bench.timing import interleaved, ratio_summary
from yolo_attn.cli import main, parse_options
from yolo_attn.registry import BLOCKS

MODELS = ["yolov8n.yaml", "yolov8n-se.yaml"]
SEEDS = [0, 1]
REPEATS = 6  # the fewest rounds with a 95% interval of the median


def _check_spread(stats: dict, n: int) -> None:
    """A mean ± std summary over ``n`` seeds agrees with its own values."""
    assert len(stats["values"]) == n and all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in stats["values"])
    assert stats["mean"] == pytest.approx(statistics.fmean(stats["values"]))
    assert stats["std"] == pytest.approx(statistics.stdev(stats["values"]))


def test_bench_tiny_budget(tiny_data, tmp_path, capsys):
    """A budgeted run (probe, plan, 2 models x 2 seeds) returns and writes the same complete result: latency with an
    A/A row and intervals, per-seed paired differences, a Markdown table, a PNG, and progress lines."""
    out = tmp_path / "bench"
    result = run_bench(models=MODELS, seeds=SEEDS, budget=0.5, epochs=1, imgsz=64, batch=8, data=str(tiny_data),
                       device="cpu", latency_imgsz=64, latency_repeats=REPEATS, out=out)
    assert json.loads((out / "bench.json").read_text()) == json.loads(json.dumps(result))

    assert result["settings"]["epochs"] == 1 and result["settings"]["budget"] == 0.5  # the cap bounds the plan
    assert result["settings"]["preset"] == "cpu"
    assert set(result["plan"]["probes"]) == set(MODELS)
    assert all(p["train_s"] >= p["epoch_s"] > 0 for p in result["plan"]["probes"].values())
    assert isinstance(result["environment"]["cpu"], str) and result["environment"]["torch_threads"] >= 1
    assert result["nc"] == 10

    stock, se = result["models"]
    assert [row["model"] for row in result["models"]] == MODELS
    assert stock["block"] == "none" and se["block"].lower() == "se x4"  # four of the config's block, by its name
    assert isinstance(stock["params"], int) and se["params"] > stock["params"] > 0
    assert se["gflops"] > stock["gflops"] > 0
    ref_ms = stock["latency_ms"]["per_round"]
    assert stock["latency_ratio"]["per_round"] == [1.0] * REPEATS and stock["latency_ratio"]["interval"] == [1, 1]
    for row in [*result["models"], result["aa"]]:
        ms, ratio = row["latency_ms"], row["latency_ratio"]
        assert len(ms["per_round"]) == REPEATS and all(t > 0 for t in ms["per_round"])
        assert ratio["per_round"] == pytest.approx([t / t0 for t, t0 in zip(ms["per_round"], ref_ms)])
        # 6 rounds: the 95% order-statistics interval of the median is [min, max] (coverage 1 - 2/64)
        assert ratio["interval"] == [min(ratio["per_round"]), max(ratio["per_round"])]
        assert ratio["coverage"] == pytest.approx(1 - 2 / 64)
        assert ratio["median"] == pytest.approx(statistics.median(ratio["per_round"]))
        assert ms["median"] == pytest.approx(statistics.median(ms["per_round"]))
    assert result["aa"]["model"] == "yolov8n.yaml (A/A copy)"

    assert stock["vs_reference"] is None
    for row in result["models"]:
        _check_spread(row["map50"], len(SEEDS))
        _check_spread(row["map50_95"], len(SEEDS))
        assert [r["seed"] for r in row["runs"]] == SEEDS
        assert [r["map50_95"] for r in row["runs"]] == row["map50_95"]["values"]
        for run in row["runs"]:
            assert (out / "runs" / f"{row['model'][:-5]}-seed{run['seed']}" / "weights" / "best.pt").is_file()
    for key in ("map50", "map50_95"):
        d = se["vs_reference"][key]
        assert d["seeds"] == SEEDS
        assert d["per_seed"] == pytest.approx([b[key] - a[key] for a, b in zip(stock["runs"], se["runs"])])
        assert d["interval"][0] <= d["mean"] <= d["interval"][1]
    # runs of one seed saw the same data order: the same training-loader seed for every model
    assert result["pairing"]["same_data_order"] is True
    assert not list((out / "runs").glob("probe-*"))  # probes are timing runs, not results

    md = (out / "bench.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| model |"))
    assert "95% CI" in header
    rows = [line for line in md if line.startswith("| yolov8n")]
    assert [r.split("|")[1].strip() for r in rows] == [MODELS[0], "yolov8n.yaml (A/A copy)", MODELS[1]]
    assert all(r.count("|") == header.count("|") for r in rows)
    contains_zero = [d["interval"][0] <= 0 <= d["interval"][1] for d in se["vs_reference"].values()]
    assert rows[2].count(NO_DIFFERENCE) == sum(contains_zero)
    md = "\n".join(md)
    assert f"Ultralytics {ultralytics.__version__}" in md and "yolo_attn.run_bench(" in md
    assert "t interval over seeds" in md and "order-statistics interval" in md
    image = cv2.imread(str(out / "bench.png"))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100

    printed = capsys.readouterr().out
    assert "[plan]" in printed and "A/A copy" in printed
    for k, (seed, model) in enumerate([(s, m) for s in SEEDS for m in MODELS], 1):
        assert f"[{k}/4] {model} seed {seed}: training" in printed


# ------------------------------------------------------------------------------------------------------ statistics


def test_t_interval_hand_computed():
    """Differences 0.01, 0.03, 0.02: mean 0.02, sd 0.01, t(0.975, 2) = 4.3027, half-width 4.3027 * 0.01 / sqrt(3)."""
    res = t_interval([0.01, 0.03, 0.02])
    half = 4.302652729911275 * 0.01 / math.sqrt(3)  # 0.024841
    assert res["mean"] == pytest.approx(0.02) and res["std"] == pytest.approx(0.01) and res["n"] == 3
    assert res["t"] == pytest.approx(4.302652729911275)
    assert res["interval"] == pytest.approx([0.02 - half, 0.02 + half])
    assert t_interval([0.5])["interval"] is None  # one seed: no interval


@pytest.mark.parametrize(
    "ref, other, detectable",
    [
        ({0: 0.50, 1: 0.60, 2: 0.55}, {0: 0.51, 1: 0.63, 2: 0.57}, False),  # diffs .01,.03,.02: [-0.0048, 0.0448]
        ({0: 0.50, 1: 0.60, 2: 0.55}, {0: 0.55, 1: 0.66, 2: 0.60}, True),  # diffs .05,.06,.05: [0.0390, 0.0677]
        ({0: 0.50, 1: 0.60, 2: 0.55}, {0: 0.45, 1: 0.54, 2: 0.50}, True),  # worse, consistently
        ({0: 0.50, 1: 0.60}, {0: 0.50, 1: 0.60}, False),  # identical: interval [0, 0] contains 0
    ],
)
def test_no_detectable_difference_rule(ref, other, detectable):
    """'No detectable difference' exactly when the paired interval contains 0; differences are other - reference."""
    d = paired_difference(ref, other)
    assert d["per_seed"] == pytest.approx([other[s] - ref[s] for s in ref])
    assert d["detectable"] is detectable
    assert (d["interval"][0] <= 0 <= d["interval"][1]) is (not detectable)


def test_paired_difference_pairs_by_seed():
    """Values are paired by seed, not by position, and a single seed gives no interval."""
    d = paired_difference({0: 0.1, 1: 0.2}, {1: 0.5, 0: 0.3})
    assert d["seeds"] == [0, 1] and d["per_seed"] == pytest.approx([0.2, 0.3])
    one = paired_difference({3: 0.1}, {3: 0.4})
    assert one["interval"] is None and one["detectable"] is None


def test_report_marks_and_pairing_check():
    """Table cells say "no detectable difference" exactly when the interval contains 0; the pairing check flags runs
    of one seed that saw different data orders."""
    from yolo_attn.bench.report import _diff_cell, pairing

    same = _diff_cell(paired_difference({0: 0.5, 1: 0.6, 2: 0.55}, {0: 0.51, 1: 0.63, 2: 0.57}))
    better = _diff_cell(paired_difference({0: 0.5, 1: 0.6, 2: 0.55}, {0: 0.55, 1: 0.66, 2: 0.60}))
    assert same == f"+0.020 [-0.005, +0.045] {NO_DIFFERENCE}" and better == "+0.053 [+0.039, +0.068]"
    runs = {"a": [{"seed": 0, "data_seed": 7}, {"seed": 1, "data_seed": 8}], "b": [{"seed": 0, "data_seed": 7},
                                                                               {"seed": 1, "data_seed": 8}]}
    assert pairing(runs)["same_data_order"] is True
    runs["b"][1]["data_seed"] = 9
    assert pairing(runs)["same_data_order"] is False
    runs["b"][1]["data_seed"] = None
    assert pairing(runs)["same_data_order"] is None


def test_median_interval_order_statistics():
    """n=10: ranks 2 and 9 (P(B <= 1) = 11/1024 <= 0.025 < P(B <= 2) = 56/1024); n=5: too few for 95%."""
    values = [7.0, 3.0, 10.0, 1.0, 5.0, 2.0, 9.0, 4.0, 8.0, 6.0]
    res = median_interval(values)
    assert res["median"] == 5.5 and res["interval"] == [2.0, 9.0]
    assert res["coverage"] == pytest.approx(1 - 2 * 11 / 1024)
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0])["interval"] is None
    big = median_interval(list(range(2000)))  # large n: exact integer arithmetic, no float overflow
    assert big["interval"][0] < 999.5 < big["interval"][1] and big["coverage"] >= 0.95


def test_interleaved_rotates_and_ratios_are_per_round():
    """Rotated rounds put every callable in every position equally often; ratios are taken round by round."""
    calls = []
    fns = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    times = interleaved(fns, repeats=6, warmup=1)
    assert calls[:3] == list("abc")  # the warm-up round
    rounds = [calls[i:i + 3] for i in range(3, len(calls), 3)]
    assert [r[0] for r in rounds] == list("abcabc") and all(sorted(r) == list("abc") for r in rounds)
    assert all(len(v) == 6 for v in times.values())
    summary = ratio_summary([2.0, 4.0, 6.0], [1.0, 2.0, 2.0])
    assert summary["per_round"] == [2.0, 2.0, 3.0] and summary["median"] == 2.0


@pytest.mark.parametrize("target", [1e9, 0.0])
def test_latency_rounds_automatic(target):
    """Without a fixed count, rounds run in whole rotations: at least MIN_ROUNDS, then more until every interval is
    within the target (a huge one: at once) or MAX_ROUNDS are done (a zero target is never met)."""
    from yolo_attn.bench.measure import MAX_ROUNDS, MIN_ROUNDS, ROUND_BLOCK

    models = {k: torch.nn.Conv2d(3, 4, 1).eval() for k in "abc"}
    res = measure_latency(models, imgsz=32, repeats=None, warmup=0, target=target)
    n = len(res["a"]["ms"]["per_round"])
    assert n % 3 == 0 and all(len(r["ratio"]["per_round"]) == n for r in res.values())
    floor = MIN_ROUNDS if target else MAX_ROUNDS
    assert floor <= n < floor + ROUND_BLOCK + 3
    assert len(measure_latency(models, imgsz=32, repeats=7, warmup=0, target=0.0)["b"]["ms"]["per_round"]) == 7


# ------------------------------------------------------------------------------------- options, presets, models


def test_options_defined_once():
    """run_bench's signature, the CLI's keys and its help all come from OPTIONS."""
    assert list(inspect.signature(run_bench).parameters) == [o.name for o in OPTIONS]
    assert len(OPTIONS) == 13
    text = usage()
    for o in OPTIONS:
        assert (f"  {o.name} " in text) is o.cli
    assert check_settings(seeds=[0, 1]).seeds == (0, 1)
    with pytest.raises(TypeError, match="colour"):
        run_bench(colour="red")
    with pytest.raises(BenchSettingsError, match="unknown option 'seedz'. Did you mean 'seeds'"):
        run_bench(seedz=[0])  # before any training: a bench error, with a suggestion


@pytest.mark.parametrize("text", ["[yolov8n.yaml,yolov8n-se.yaml]", "yolov8n.yaml,yolov8n-se.yaml",
                                  "[yolov8n.yaml, 'yolov8n-se.yaml']", "(yolov8n.yaml,yolov8n-se.yaml)"])
def test_cli_models_list_syntax(text):
    """Ultralytics' list syntax and plain comma lists give the same model list."""
    kw = parse_options("bench", OPTIONS, [f"models={text}", "seeds=[0,1,2]"], defaults=False)  # as yolo-attn bench
    assert kw == {"models": tuple(MODELS), "seeds": (0, 1, 2)}


def test_cli_bench_help(capsys):
    """`yolo-attn bench help` lists every option and both presets, and runs nothing."""
    main(["bench", "help"])
    printed = capsys.readouterr().out
    assert all(o.name in printed for o in OPTIONS if o.cli) and "gpu" in printed and "cpu" in printed


def test_select_preset(monkeypatch):
    """The CPU preset without CUDA; with CUDA, the GPU preset for auto and GPU devices, the CPU one for cpu."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_preset(None) is PRESETS["cpu"] and select_preset("auto") is PRESETS["cpu"]
    assert check_settings().preset == "cpu" and check_settings().device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_preset(None) is PRESETS["gpu"] and select_preset("0") is PRESETS["gpu"]
    assert select_preset("cpu") is PRESETS["cpu"]
    s = check_settings()
    gpu = PRESETS["gpu"]
    assert (s.preset, s.device, s.imgsz, s.batch, s.epochs, s.budget) == ("gpu", "0", gpu.imgsz, gpu.batch,
                                                                          gpu.epochs, gpu.budget)
    assert gpu.batch > PRESETS["cpu"].batch
    s = check_settings(device="cpu", epochs=3, batch=4)
    assert (s.preset, s.epochs, s.budget, s.batch) == ("cpu", 3, None, 4)  # given values win; epochs= fixes the run


def test_default_models_follow_the_registry(monkeypatch):
    """Stock plus the first four registered blocks' ready-made yolov8n configs, in registry order."""
    models = default_models()
    assert len(models) == 5 and models[0] == "yolov8n.yaml"
    assert models[1:] == tuple(f"yolov8n-{n.lower()}.yaml" for n in BLOCKS.names()[:4])
    last = BLOCKS.names()[3]
    monkeypatch.setattr(BLOCKS.get(last), "rank", -1)  # move the fourth block to the front
    assert default_models()[1] == f"yolov8n-{last.lower()}.yaml"
    assert check_settings().models == default_models()


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
        (["models=[]"], "models must be a non-empty list"),
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
        main(["bench", "models=[nosuch.yaml,yolov8n.yaml]", f"data={tiny_data}", f"out={tmp_path / 'b'}"])
    assert not (tmp_path / "b").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs the full checks")
def test_gpu_checks_script_without_gpu(tmp_path, env_subprocess):
    """scripts/gpu_checks.sh says there is no GPU, exits 0 and runs (and writes) nothing."""
    out = tmp_path / "gpu-checks"
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_checks.sh"), str(out), "budget=1"], env=env_subprocess,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "no CUDA device here" in r.stdout and "nothing run" in r.stdout
    assert not out.exists()
