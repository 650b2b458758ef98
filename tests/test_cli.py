"""The yolo-attn command: kit commands, Ultralytics syntax passthrough, kit-only options stripped."""

from __future__ import annotations

import pytest
import yaml

from yolo_attn import BLOCKS, list_configs
from yolo_attn.cli import KIT_OPTIONS, main


def test_list(capsys):
    """`yolo-attn list` shows every registered block with its class and every shipped config."""
    main(["list"])
    out = capsys.readouterr().out
    for name, cls in BLOCKS.items():
        assert f"{cls.__module__}.{cls.__qualname__}" in out and f"  {name} " in out
    names = {p.name for p in list_configs()}
    blocks = [b.lower() for b in BLOCKS]
    bases = ["yolov8", "yolov8-seg", "yolov8-pose", "yolov8-obb", "yolov8-cls", "yolo11"]
    assert names == {f"{base}-{b}.yaml" for base in bases for b in blocks}  # exactly the shipped set
    assert all(name in out for name in names)
    assert "data=digits.yaml" in out


def test_data(tmp_path, capsys):
    """`yolo-attn data root=... n_train=...` writes the dataset and prints its data YAML."""
    main(["data", f"root={tmp_path / 'd'}", "n_train=3", "n_val=2", "imgsz=64"])
    path = capsys.readouterr().out.strip()
    data = yaml.safe_load(open(path))
    assert len(data["names"]) == 10 and len(list((tmp_path / "d" / "images" / "train").glob("*.jpg"))) == 3
    with pytest.raises(SystemExit, match="numeric values expected"):
        main(["data", "n_train=many"])
    with pytest.raises(SystemExit, match="expected key=value"):
        main(["data", "n_train"])


@pytest.fixture
def image(tiny_data):
    return next((tiny_data.parent / "images" / "val").glob("*.jpg"))


def test_kit_options_stripped_before_ultralytics(tmp_path, image, monkeypatch):
    """A kit-only key=value is applied and removed; Ultralytics' own check still rejects unknown keys."""
    seen = []
    monkeypatch.setitem(KIT_OPTIONS, "kit_test_option", seen.append)
    args = ["predict", "model=yolov8n-simam.yaml", f"source={image}", "imgsz=64", f"project={tmp_path}", "name=p",
            "save=False", "verbose=False"]
    main([*args, "kit_test_option=7"])  # would raise Ultralytics' SyntaxError if it leaked through
    assert seen == ["7"]
    monkeypatch.delitem(KIT_OPTIONS, "kit_test_option")
    with pytest.raises(SyntaxError, match="kit_test_option"):
        main([*args, "kit_test_option=7"])
