"""Tests of the built-in digits detection dataset (yolo_attn.data)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yolo_attn.data import default_data_dir, digits_yaml, make_digits_dataset
from yolo_attn.data import digits as D
from yolo_attn.data.presets import PRESETS, get_preset, preset_yaml

SMALL = {"n_train": 6, "n_val": 3, "imgsz": 64}
LABEL_LINE = re.compile(r"^\d \d\.\d{6} \d\.\d{6} \d\.\d{6} \d\.\d{6}$")


def _files(root: Path, split: str, kind: str, ext: str) -> list[str]:
    """Sorted file stems of one split and kind ('images'/'labels')."""
    return sorted(p.stem for p in (root / kind / split).glob(f"*.{ext}"))


def _hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under root except the YAML, whose absolute path differs between roots."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "digits.yaml"
    }


def _read_labels(path: Path) -> list[tuple[int, float, float, float, float]]:
    """Parse a YOLO label file."""
    rows = []
    for line in path.read_text().splitlines():
        c, *xywh = line.split()
        rows.append((int(c), *map(float, xywh)))
    return rows


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory) -> Path:
    """A small dataset shared by the read-only tests."""
    root = tmp_path_factory.mktemp("small") / "digits"
    make_digits_dataset(root, n_train=20, n_val=8, imgsz=96, seed=3)
    return root


# --------------------------------------------------------------------------------------------------------- layout


def test_layout_yaml_and_meta(tmp_path):
    root = tmp_path / "ds"
    y = make_digits_dataset(root, **SMALL, seed=1)
    assert y == root.resolve() / "digits.yaml"

    data = yaml.safe_load(y.read_text())
    assert Path(data["path"]).is_absolute() and Path(data["path"]) == root.resolve()
    assert data["train"] == "images/train" and data["val"] == "images/val"
    assert data["names"] == {i: str(i) for i in range(10)}

    for split, n in (("train", SMALL["n_train"]), ("val", SMALL["n_val"])):
        images, labels = _files(root, split, "images", "jpg"), _files(root, split, "labels", "txt")
        assert images == labels == [f"{i:06d}" for i in range(n)]
        img = cv2.imread(str(root / "images" / split / "000000.jpg"))
        assert img.shape == (SMALL["imgsz"], SMALL["imgsz"], 3)

    meta = json.loads((root / "meta.json").read_text())
    assert meta == {"format_version": D.FORMAT_VERSION, **D.DATASETS["digits"], **SMALL, "seed": 1}
    # The temporary generation directory was renamed away, nothing else was left next to the dataset
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_default_size_generation(tmp_path):
    spec = D.DATASETS["digits"]
    y = make_digits_dataset(tmp_path / "d")
    root = y.parent
    assert len(_files(root, "train", "images", "jpg")) == spec["n_train"]
    assert len(_files(root, "val", "images", "jpg")) == spec["n_val"]
    last = f"{spec['n_val'] - 1:06d}.jpg"
    assert cv2.imread(str(root / "images" / "val" / last)).shape == (spec["imgsz"],) * 2 + (3,)
    labels = [_read_labels(p) for p in sorted((root / "labels" / "train").glob("*.txt"))]
    # Every class is represented and images hold a mix of digit counts (1..max_digits, a few dropped)
    assert {c for rows in labels for c, *_ in rows} == set(range(spec["classes"]))
    counts = [len(rows) for rows in labels]
    assert set(counts) == set(range(1, spec["max_digits"] + 1))
    assert 0.8 * (1 + spec["max_digits"]) / 2 < np.mean(counts) <= (1 + spec["max_digits"]) / 2 + 0.1


def test_labels_valid(small_ds):
    max_digits = json.loads((small_ds / "meta.json").read_text())["max_digits"]
    for split in ("train", "val"):
        for path in sorted((small_ds / "labels" / split).glob("*.txt")):
            lines = path.read_text().splitlines()
            assert 1 <= len(lines) <= max_digits, path
            for line in lines:
                assert LABEL_LINE.match(line), line
            for c, cx, cy, w, h in _read_labels(path):
                assert 0 <= c <= 9
                assert all(0 < v <= 1 for v in (cx, cy, w, h))
                eps = 1e-6  # 6-decimal rounding
                assert cx - w / 2 >= -eps and cx + w / 2 <= 1 + eps
                assert cy - h / 2 >= -eps and cy + h / 2 <= 1 + eps


# ----------------------------------------------------------------------------------------------------------- boxes


def test_tight_box_of_hand_made_mask():
    mask = np.zeros((20, 30), np.float32)
    mask[5:9, 7:12] = 1.0
    mask[12, 3] = D.ALPHA_THRESHOLD  # exactly at the threshold: not visible
    mask[0, 29] = 0.05  # faint halo: not visible
    assert D._tight_box(mask) == (7, 5, 12, 9)  # x0, y0, x1, y1 with exclusive ends
    mask[19, 0] = 0.5
    assert D._tight_box(mask) == (0, 5, 12, 20)
    assert D._tight_box(np.zeros((4, 4))) is None


def test_placed_digit_box_is_tight():
    alphas, _ = D._load_digits()
    rng = np.random.default_rng(0)
    for i in range(20):
        alpha, x, y, (x0, y0, x1, y1) = D._place_digit(rng, alphas[i], 96, [])
        visible = alpha > D.ALPHA_THRESHOLD
        local = visible[y0 - y : y1 - y, x0 - x : x1 - x]
        assert local.sum() == visible.sum()  # nothing visible outside the box
        assert local[0].any() and local[-1].any() and local[:, 0].any() and local[:, -1].any()  # no slack
        side = alpha.shape[0]
        assert 0.12 * 96 - 1 <= side <= 0.45 * 96 + 1
        assert 0 <= x and x + side <= 96 and 0 <= y and y + side <= 96


@pytest.mark.parametrize("texture", D.TEXTURES)
def test_boxes_enclose_the_rendered_digits(texture):
    # _render_image draws the background first from the same stream, so replaying the stream recovers it exactly
    pool = np.arange(100)
    for seed in range(15):
        bg = D._background(np.random.default_rng(seed), 96, texture)
        img, labels, _ = D._render_image(np.random.default_rng(seed), pool, 96, texture=texture)
        change = np.linalg.norm(img.astype(np.float32) - cv2.merge(list(bg)), axis=-1)
        inside = np.zeros(change.shape, bool)
        for _, (x0, y0, x1, y1) in labels:
            inside[y0:y1, x0:x1] = True
            assert change[y0:y1, x0:x1].max() > 100  # the digit stands out from its background
        # Outside all boxes only the faint anti-aliased fringe (alpha <= threshold) may differ from the background
        assert change[~inside].max(initial=0) <= D.ALPHA_THRESHOLD * 255 * np.sqrt(3) + 1
        boxes = [b for _, b in labels]
        for i, b in enumerate(boxes):
            assert D._iou(b, boxes[:i] + boxes[i + 1 :]).max(initial=0) <= D.MAX_IOU


# ------------------------------------------------------------------------------------------------------ determinism


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = make_digits_dataset(tmp_path / "a", **SMALL, seed=7).parent
    b = make_digits_dataset(tmp_path / "b", **SMALL, seed=7).parent
    c = make_digits_dataset(tmp_path / "c", **SMALL, seed=8).parent
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert len(ha) == 2 * (SMALL["n_train"] + SMALL["n_val"]) + 1  # images, labels, meta.json
    assert ha == hb
    ya, yb = (yaml.safe_load((r / "digits.yaml").read_text()) for r in (a, b))
    assert {**ya, "path": None} == {**yb, "path": None}
    images = [k for k in ha if k.endswith(".jpg")]
    assert all(ha[k] != hc[k] for k in images)


def test_larger_dataset_extends_smaller_one(tmp_path):
    # Each image has its own seed stream: growing n_train keeps existing images and leaves val untouched
    small = _hashes(make_digits_dataset(tmp_path / "s", n_train=3, n_val=2, imgsz=64).parent)
    big = _hashes(make_digits_dataset(tmp_path / "b", n_train=5, n_val=2, imgsz=64).parent)
    assert all(big[k] == v for k, v in small.items() if k != "meta.json")


def test_global_rng_untouched(tmp_path):
    np.random.seed(123)
    state = np.random.get_state()
    make_digits_dataset(tmp_path / "d", **SMALL)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


# -------------------------------------------------------------------------------------------------------- the split


def test_split_indices_disjoint_and_complete():
    train, val = D._split_indices(1797, 0)
    assert len(np.intersect1d(train, val)) == 0
    assert np.array_equal(np.union1d(train, val), np.arange(1797))
    assert len(val) == round(1797 * D.VAL_FRACTION)
    assert not np.array_equal(val, D._split_indices(1797, 1)[1])
    assert np.array_equal(val, D._split_indices(1797, 0)[1])


def test_generation_uses_disjoint_digits_for_train_and_val(tmp_path, monkeypatch):
    used = {}
    render = D._render_image

    def spy(rng, pool, *args, **kwargs):
        img, labels, src = render(rng, pool, *args, **kwargs)
        assert set(src) <= set(pool.tolist())
        used.setdefault(id(pool), (pool, []))[1].extend(src)
        return img, labels, src

    monkeypatch.setattr(D, "_render_image", spy)
    make_digits_dataset(tmp_path / "d", n_train=12, n_val=6, imgsz=64)
    (train_pool, train_src), (val_pool, val_src) = used.values()  # one pool per split, train first
    assert len(np.intersect1d(train_pool, val_pool)) == 0
    assert not set(train_src) & set(val_src)
    assert len(train_pool) + len(val_pool) == 1797


def test_fewer_classes_keep_the_disjoint_split(tmp_path):
    root = make_digits_dataset(tmp_path / "d", n_train=30, n_val=10, imgsz=64, classes=3).parent
    assert yaml.safe_load((root / "digits.yaml").read_text())["names"] == {0: "0", 1: "1", 2: "2"}
    seen = {c for split in ("train", "val") for p in (root / "labels" / split).glob("*.txt") for c, *_ in _read_labels(p)}
    assert seen == {0, 1, 2}
    # The pools are the 10-class writer split filtered by class: still disjoint, nothing of another class
    split_seq = np.random.SeedSequence(0).spawn(3)[0]
    full_train, full_val = D._split_indices(1797, split_seq)
    train, val = D._pools(split_seq, 3)
    labels = D._load_digits()[1]
    assert set(labels[train]) == set(labels[val]) == {0, 1, 2}
    assert set(train) <= set(full_train) and set(val) <= set(full_val) and not set(train) & set(val)
    assert len(train) + len(val) == int((labels < 3).sum())


def test_digit_sizes_follow_scale(tmp_path):
    imgsz, (lo, hi) = 128, (0.3, 0.4)
    root = make_digits_dataset(tmp_path / "d", n_train=30, n_val=2, imgsz=imgsz, scale=(lo, hi)).parent
    sides = [max(w, h) for p in (root / "labels" / "train").glob("*.txt") for _, _, _, w, h in _read_labels(p)]
    # The tight box lies inside the digit's square (side in [lo, hi]) and digits fill most of their square's height
    assert max(sides) <= hi + 1 / imgsz
    assert min(sides) >= 0.6 * lo and np.median(sides) >= 0.8 * lo


def test_plain_texture_is_smooth_rich_texture_is_not():
    def detail(texture: str, seed: int) -> float:
        bg = D._background(np.random.default_rng(seed), 128, texture)
        # What a 2-px blur removes: grain (std <= 16 / sqrt(12) = 4.6) for plain, plus noise and stripes for rich
        return float(np.std(bg - np.stack([cv2.GaussianBlur(c, (0, 0), 2.0) for c in bg])))

    plain = [detail("plain", s) for s in range(10)]
    rich = [detail("rich", s) for s in range(10)]
    assert max(plain) < 4.7
    assert np.median(rich) > np.median(plain)


def test_loader_matches_sklearn():
    from sklearn.datasets import load_digits

    alphas, classes = D._load_digits()
    ref = load_digits()
    assert np.array_equal(alphas * 16, ref.images.astype(np.float32))
    assert np.array_equal(classes, ref.target)


# ----------------------------------------------------------------------------------------------------------- cache


def test_digits_yaml_is_cached_and_regenerates_on_new_args(tmp_path, monkeypatch):
    root = tmp_path / "digits"
    y = digits_yaml(root, **SMALL)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}

    def boom(*args, **kwargs):
        raise AssertionError("regenerated a dataset that was already there")

    with monkeypatch.context() as m:
        m.setattr(D, "_generate", boom)
        assert digits_yaml(root, **SMALL) == y
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == stamps

    y2 = digits_yaml(root, **{**SMALL, "n_val": 4})
    assert y2 == y
    assert json.loads((root / "meta.json").read_text())["n_val"] == 4
    assert len(_files(root, "val", "images", "jpg")) == 4


def test_digits_yaml_regenerates_incomplete_dataset(tmp_path):
    root = tmp_path / "digits"
    digits_yaml(root, **SMALL)
    (root / "meta.json").unlink()  # as if generation had been interrupted before finishing
    (root / "images" / "train" / "000000.jpg").unlink()
    digits_yaml(root, **SMALL)
    assert (root / "meta.json").is_file() and (root / "images" / "train" / "000000.jpg").is_file()


def test_digits_yaml_follows_a_moved_dataset(tmp_path):
    old = digits_yaml(tmp_path / "old", **SMALL).parent
    new = old.rename(tmp_path / "new")
    stamp = (new / "images" / "train" / "000000.jpg").stat().st_mtime_ns
    y = digits_yaml(new, **SMALL)
    assert yaml.safe_load(y.read_text())["path"] == str(new.resolve())
    assert (new / "images" / "train" / "000000.jpg").stat().st_mtime_ns == stamp


def test_default_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_ATTN_HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / "datasets"
    assert digits_yaml(**SMALL) == (tmp_path / "datasets" / "digits" / "digits.yaml").resolve()
    monkeypatch.delenv("YOLO_ATTN_HOME")
    assert default_data_dir() == Path.home() / ".cache" / "yolo-attn" / "datasets"


def test_make_rewrites_digits_datasets_but_nothing_else(tmp_path):
    root = tmp_path / "d"
    make_digits_dataset(root, **SMALL)
    make_digits_dataset(root, **{**SMALL, "n_train": 2})
    assert len(_files(root, "train", "images", "jpg")) == 2
    # An explicit call rewrites a damaged dataset even though its meta.json still matches
    (root / "labels" / "train" / "000001.txt").unlink()
    make_digits_dataset(root, **{**SMALL, "n_train": 2})
    assert (root / "labels" / "train" / "000001.txt").is_file()

    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a digits dataset"):
        make_digits_dataset(user, **SMALL)
    assert (user / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "mine"]  # no temporary directory left behind


def test_concurrent_digits_yaml_calls(tmp_path):
    # Load digits.py standalone so the workers skip the package import (Ultralytics) and start together
    code = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('digits', {str(Path(D.__file__))!r}); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "print(m.digits_yaml(sys.argv[1], n_train=40, n_val=8, imgsz=64))"
    )
    root = tmp_path / "digits"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e.decode() for _, e in outs]
    assert {o.decode().strip() for o, _ in outs} == {str(root.resolve() / "digits.yaml")}
    assert len(_files(root, "train", "images", "jpg")) == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits"]
    ref = make_digits_dataset(tmp_path / "ref", n_train=40, n_val=8, imgsz=64).parent
    assert _hashes(root) == _hashes(ref)


# ------------------------------------------------------------------------------------------------------ Ultralytics


def test_ultralytics_reads_the_dataset(small_ds, tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "cfg"))
    from ultralytics.data import utils as data_utils
    from ultralytics.data.dataset import YOLODataset

    # check_det_dataset ends by fetching a plotting font from the internet; that is no part of reading the data
    monkeypatch.setattr(data_utils, "check_font", lambda *a, **k: None)
    data = data_utils.check_det_dataset(str(small_ds / "digits.yaml"))
    assert data["nc"] == 10
    assert data["names"] == {i: str(i) for i in range(10)}
    assert Path(data["train"]).is_dir() and Path(data["val"]).is_dir()

    ds = YOLODataset(img_path=data["val"], data=data, imgsz=96, augment=False, batch_size=4)
    assert len(ds) == 8
    expected = [len(_read_labels(p)) for p in sorted((small_ds / "labels" / "val").glob("*.txt"))]
    assert [len(lb["cls"]) for lb in ds.labels] == expected  # every label file parsed, none dropped as corrupt


# ------------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_train": 0}, "n_train"),
        ({"n_val": 0}, "n_val"),
        ({"imgsz": 31}, "imgsz"),
        ({"n_train": 2.5}, "n_train"),
        ({"n_val": True}, "n_val"),
        ({"imgsz": "64"}, "imgsz"),
        ({"seed": -1}, "seed"),
    ],
)
def test_argument_validation(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=rf"'{name}' must be an integer >= \d+"):
        make_digits_dataset(tmp_path / "d", **kwargs)
    with pytest.raises(ValueError, match=rf"'{name}'"):
        digits_yaml(tmp_path / "d", **kwargs)
    assert not any(tmp_path.iterdir())  # rejected before anything was written


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"classes": 0}, r"'classes' must be an integer in 1\.\.10"),
        ({"classes": 11}, r"'classes' must be an integer in 1\.\.10"),
        ({"max_digits": 0}, r"'max_digits' must be an integer >= 1"),
        ({"scale": (0.5, 0.2)}, r"'scale' must be two fractions \(lo, hi\) with 0 < lo <= hi <= 1"),
        ({"scale": (0.0, 0.5)}, r"'scale' must be two fractions"),
        ({"scale": (0.2, 1.5)}, r"'scale' must be two fractions"),
        ({"scale": 0.3}, r"'scale' must be two fractions"),
        ({"texture": "noisy"}, r"'texture' must be one of \('plain', 'rich'\)"),
        ({"dataset": "digits-huge"}, r"unknown built-in dataset 'digits-huge'; choose one of"),
    ],
)
def test_style_argument_validation(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_digits_dataset(tmp_path / "d", **kwargs)
    with pytest.raises(ValueError, match=message):
        digits_yaml(tmp_path / "d", **kwargs)
    assert not any(tmp_path.iterdir())


def test_digits_yaml_rejects_unknown_arguments(tmp_path):
    with pytest.raises(TypeError, match="n_img"):
        digits_yaml(tmp_path, n_img=3)


# --------------------------------------------------------------------------------------------------------- presets


def test_builtin_datasets_defaults_and_names(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_ATTN_HOME", str(tmp_path))
    # The default dataset is the CPU preset's; the hard one keeps the original, harder generator settings
    assert get_preset("cpu").dataset == "digits" and get_preset("gpu").dataset == "digits-hard"
    hard = D.DATASETS["digits-hard"]
    assert (hard["classes"], hard["scale"], hard["max_digits"], hard["texture"]) == (10, [0.12, 0.45], 4, "rich")
    # Overrides keep the other values of the chosen built-in set, and each set gets its own folder
    y = digits_yaml(dataset="digits-hard", n_train=3, n_val=2, imgsz=64)
    assert y == (tmp_path / "datasets" / "digits-hard" / "digits.yaml").resolve()
    assert json.loads((y.parent / "meta.json").read_text()) == {
        "format_version": D.FORMAT_VERSION, **hard, "n_train": 3, "n_val": 2, "imgsz": 64, "seed": 0}


def test_preset_yaml_generates_the_preset_dataset(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("yolo_attn.data.presets.digits_yaml", lambda root, **kw: calls.append((root, kw)) or root)
    monkeypatch.setenv("YOLO_ATTN_HOME", str(tmp_path))
    assert preset_yaml("gpu") == tmp_path / "datasets" / "digits-hard"
    assert preset_yaml(PRESETS["cpu"], root=tmp_path / "x") == tmp_path / "x"
    assert calls == [(tmp_path / "datasets" / "digits-hard", {"dataset": "digits-hard"}),
                     (tmp_path / "x", {"dataset": "digits"})]
    with pytest.raises(ValueError, match="unknown training preset 'tpu'; choose one of \\['cpu', 'gpu'\\]"):
        get_preset("tpu")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_train_args_are_valid_ultralytics_settings(name, tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "cfg"))
    from ultralytics.cfg import get_cfg

    p = get_preset(name)
    args = p.train_args()
    cfg = get_cfg(overrides={**args, "data": f"{p.dataset}.yaml"})  # type- and name-checks every argument
    assert {k: getattr(cfg, k) for k in args} == args
    assert p.imgsz == p.data_args["imgsz"]  # trained at the size the images were generated at
    # The printed command carries every setting, so the quick start reproduces the preset exactly
    words = p.command("yolov8n-nam.yaml").split()
    assert words[:4] == ["yolo-attn", "train", "model=yolov8n-nam.yaml", f"data={p.dataset}.yaml"]
    assert dict(w.split("=", 1) for w in words[4:]) == {k: str(v) for k, v in args.items()}


def test_builtin_names_resolve_to_their_datasets(tmp_path, monkeypatch):
    import yolo_attn.data
    from yolo_attn.integration import files

    monkeypatch.chdir(tmp_path)  # no local file shadows the names
    monkeypatch.setattr(yolo_attn.data, "digits_yaml", lambda dataset: f"<{dataset}>")
    assert files._resolve("digits.yaml") == "<digits>"
    assert files._resolve("digits-hard.yaml") == "<digits-hard>"
    assert files._resolve("digits-huge.yaml") is None
