"""Model YAMLs written the community's way (channel count first, community block names) build the model they mean,
at every scale, or fail naming the row, the argument and both conventions: never a silently different model.

Each case puts one row after a layer the YAML writes as 256 channels (``after=256``) or 1024 channels (``after=1024``)
and is checked at every scale n-x, where those layers have ``make_divisible(min(c, max_channels) * width, 8)``
channels (64/128/192/256/320 and 256/512/576/512/640).
"""

from __future__ import annotations

import copy
import logging
import math

import pytest
import ultralytics.nn.tasks as tasks
from ultralytics.utils import LOGGER

from yolo_attn import BLOCKS
from yolo_attn.integration import parser

SCALES = {"n": [0.33, 0.25, 1024], "s": [0.33, 0.50, 1024], "m": [0.67, 0.75, 768], "l": [1.00, 1.00, 512],
          "x": [1.00, 1.25, 512]}  # YOLOv8's


def scaled(c: int, scale: str) -> int:
    """Channels Ultralytics gives a layer the YAML writes as ``c`` (its make_divisible rule, written out here)."""
    _, width, max_channels = SCALES[scale]
    return math.ceil(min(c, max_channels) * width / 8) * 8


def model_dict(row: list, after: int, scale: str) -> dict:
    """A small backbone: the tested row follows a Conv the YAML writes as ``after`` channels (row 2 or row 3)."""
    layers = [[-1, 1, "Conv", [64, 3, 2]], [-1, 1, "Conv", [256, 3, 2]]]
    if after == 1024:
        layers.append([-1, 1, "Conv", [1024, 3, 2]])
    return {"nc": 10, "scales": copy.deepcopy(SCALES), "scale": scale, "backbone": [*layers, row],
            "head": [[-1, 1, "Classify", [10]]]}


def build(row: list, after: int, scale: str, fresh: bool = False):
    """Parse the model and return (the tested row's module, the kit's log messages at warning level and above).

    ``fresh`` forgets which community rows this process has reported, so the report is seen again.
    """
    if fresh:
        parser._logged.clear()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    level = LOGGER.level
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.WARNING)  # the tests run with YOLO_VERBOSE=False, which keeps only errors
    try:
        layers, _ = tasks.parse_model(model_dict(row, after, scale), ch=3, verbose=False)
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)
    return layers[-2], [r.getMessage() for r in records if "yolo-attn" in r.getMessage()]


# (row, after, block, expected arguments or None for an error, convention)
CASES = [
    ([-1, 1, "SimAM", [1024]], 1024, "SimAM", {"e_lambda": 1e-4}, "community"),
    ([-1, 1, "SimAM", [1e-3]], 1024, "SimAM", {"e_lambda": 1e-3}, "kit"),
    ([-1, 1, "SimAM", [512]], 256, "SimAM", None, "error"),  # 512 is neither this layer's width nor a valid lambda
    ([-1, 1, "SEAttention", [256, 16]], 256, "SE", {"reduction": 16, "divisor": 8}, "community"),
    ([-1, 1, "SEAttention", [1024]], 1024, "SE", {"reduction": 16, "divisor": 8}, "community"),
    ([-1, 1, "SEAttention", [1024, 4]], 1024, "SE", {"reduction": 4, "divisor": 8}, "community"),
    ([-1, 1, "SE", [16]], 1024, "SE", {"reduction": 16, "divisor": 8}, "kit"),
    ([-1, 1, "SE", [8, 4]], 256, "SE", {"reduction": 8, "divisor": 4}, "kit"),
    ([-1, 1, "SE", [1024]], 256, "SE", None, "error"),  # a reduction above the channel count: cannot be meant
    ([-1, 1, "SEAttention", [512, 16]], 256, "SE", None, "error"),  # 512 channels first, but this layer has fewer
    ([-1, 1, "NAM", [True]], 256, "NAM", {"spatial": True}, "kit"),
    ([-1, 1, "NAM", []], 256, "NAM", {"spatial": False}, "kit"),
    ([-1, 1, "NAM", [256]], 256, "NAM", {"spatial": False}, "community"),
    ([-1, 1, "NAMAttention", [1024, True]], 1024, "NAM", {"spatial": True}, "community"),
    ([-1, 1, "NAM", [1024]], 256, "NAM", None, "error"),
    ([-1, 1, "DAS", [0.5]], 256, "DAS", {"alpha": 0.5, "k": 3}, "kit"),
    ([-1, 1, "DASAttention", [1024, 0.25, 5]], 1024, "DAS", {"alpha": 0.25, "k": 5}, "community"),
    ([-1, 1, "DAS", [512]], 256, "DAS", None, "error"),
]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize(
    "row,after,block,expected,convention", CASES, ids=[f"{c[0][2]}{c[0][3]}@{c[1]}" for c in CASES]
)
def test_row_builds_what_it_means_or_raises(row, after, block, expected, convention, scale):
    """Both conventions build the block with the arguments the row means; anything else is a clear ValueError."""
    cls = BLOCKS.get(block)
    if expected is None:
        with pytest.raises(ValueError) as e:
            build(row, after, scale)
        msg = str(e.value)
        i = 3 if after == 1024 else 2
        assert f"model YAML row {i} [-1, 1, {row[2]}, {row[3]}]" in msg  # the row
        assert f"argument '{cls.args[0].name}'" in msg  # the argument
        assert "kit's convention" in msg and "community convention" in msg and cls.signature() in msg
        return
    m, logs = build(copy.deepcopy(row), after, scale, fresh=True)
    assert type(m) is cls and m.c1 == scaled(after, scale)
    assert repr(m) == repr(cls(m.c1, **expected))  # same arguments, same submodules and widths
    understood = [msg for msg in logs if "community convention" in msg]
    assert len(understood) == (convention == "community")
    if understood:
        assert f"{row[3][0]} is the input channel count" in understood[0]
        assert f"the kit's own form is [{row[2]}, {row[3][1:]}]" in understood[0]


def test_scaled_channel_count_is_accepted_too():
    """The count after width scaling (what a hand-edited parser would read from ch[f]) is the channel argument too."""
    for scale in SCALES:
        c1 = scaled(1024, scale)
        m, logs = build([-1, 1, "SEAttention", [c1, 8]], 1024, scale, fresh=True)
        assert type(m) is BLOCKS.get("SE") and m.c1 == c1 and m.reduction == 8 and len(logs) == 1


def test_community_row_is_logged_once():
    """The same community row parsed again (another model of the same YAML) is not reported again."""
    row = [-1, 1, "SimAM", [1024]]
    _, first = build(copy.deepcopy(row), 1024, "s", fresh=True)
    _, again = build(copy.deepcopy(row), 1024, "s")
    assert len(first) == 1 and again == []


@pytest.mark.parametrize("yaml_name", [*BLOCKS.names(), *BLOCKS.aliases()])
def test_every_block_and_alias_in_both_conventions(yaml_name):
    """Every registered name and alias builds its block from [], [C], [*defaults] and [C, *defaults], at n and x."""
    cls = BLOCKS.get(yaml_name)
    defaults = [a.default for a in cls.args]
    for scale in "nx":
        c1 = scaled(1024, scale)
        for args in ([], [1024], defaults, [1024, *defaults], [c1, *defaults]):
            m, _ = build([-1, 1, yaml_name, list(args)], 1024, scale)
            assert type(m) is cls and repr(m) == repr(cls(c1)), (yaml_name, args)
