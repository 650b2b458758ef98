"""Fuzz test of the parser integration: random valid and invalid kit rows inside a small stock-like backbone.

A seeded generator (reproducible, no extra dependency; each failure prints the seed and the rows) inserts NAM, SimAM,
SE and DAS rows at random positions with random ``from`` forms, repeats and arguments. Valid models must build through
Ultralytics' own ``parse_model`` with every block sized to its input and the model must run through Ultralytics' own
forward routing with each block keeping its input's shape; invalid ones must raise ``ValueError``/``KeyError`` naming
the offending row, never another exception or a model.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn as nn
import ultralytics.nn.tasks as tasks

from yolo_attn import DAS, NAM, SE, SimAM

BLOCKS = {"NAM": NAM, "SimAM": SimAM, "SE": SE, "DAS": DAS}
N_VALID, N_INVALID = 150, 400  # a few seconds on 2 CPU cores

VALID_ARGS = {  # one generator per block: a random argument list its constructor accepts
    "NAM": lambda r: r.choice([[], [True], [False]]),
    "SimAM": lambda r: r.choice([[], [10 ** r.uniform(-6, 1)], [r.randint(1, 3)]]),
    "SE": lambda r: r.choice([[], [r.choice([0.5, 2, 4, 16, 64])], [r.uniform(0.1, 32), r.randint(1, 16)]]),
    "DAS": lambda r: r.choice([[], [r.uniform(0.01, 1.0)], [1], [r.uniform(0.05, 1.0), r.choice([1, 3, 5, 7])]]),
}
BAD_ARGS = {  # argument lists each block must refuse: wrong type, out of range, too many, unparseable strings
    "NAM": [["yes"], [1], [None], [0.5], [True, False], [[True]]],
    "SimAM": [[0], [-1e-3], [math.nan], [math.inf, 1], ["abc"], [True], [1e-4, 2], [None]],
    "SE": [[0], [-4], [math.nan], [16, 0], [16, 2.5], [16, 8, 3], ["abc"], [True], [16, True]],
    "DAS": [[0], [1.5], [-0.2], [math.nan], [0.2, 4], [0.2, 17], [0.2, 3.0], [0.2, 3, 1], ["abc"], [False]],
}
BAD_ARGS_CONTAINER = [16, "abc", {"reduction": 4}, None, (0.2,)]
BAD_REPEATS = [0, -1, 1.5, "2", True, None]


def bad_froms(i: int) -> list:
    """``from`` values a kit row at index ``i`` must refuse: lists (several inputs), later/self/out-of-range layers,
    and non-integers."""
    return [[-1, 0] if i else [-1, -1], [-1], i, i + 3, -(i + 1) if i else -2, -(i + 5), True, "-1", 1.5, None]


@dataclass
class Case:
    """One generated model: its rows, the kit row indices, and (for an invalid case) the row that must be named."""

    seed: int
    rows: list = field(default_factory=list)
    kit: list = field(default_factory=list)
    bad_row: int | None = None
    what: str = ""

    def describe(self) -> str:
        """Return a reproducible description for failure messages."""
        lines = "\n".join(f"  {i}: {row}" for i, row in enumerate(self.rows))
        return f"seed={self.seed} {self.what or 'valid'}\n{lines}"


def _stock_rows(r: random.Random) -> list:
    """A stock-like backbone of 3-5 Conv/C2f rows, widths 8/16, at most three stride-2 convolutions."""
    rows, downs = [], 0
    for j in range(r.randint(3, 5)):
        c = r.choice([8, 16])
        if j % 2 == 0 or r.random() < 0.3:
            s = 2 if downs < 3 and r.random() < 0.7 else 1
            downs += s == 2
            rows.append([-1, 1, "Conv", [c, 3, s]])
        else:
            rows.append([-1, r.randint(1, 2), "C2f", [c, r.random() < 0.5]])
    return rows


def _valid_from(r: random.Random, i: int) -> int:
    """A valid single input for row ``i``: the previous layer, an absolute index or a negative offset."""
    if i == 0:
        return -1
    return r.choice([-1, r.randrange(i), -r.randint(1, i)])


def make_case(seed: int, valid: bool) -> Case:
    """Generate one model; an invalid one has exactly one bad kit row (bad ``from``, repeats, args or name)."""
    r = random.Random(seed)
    case = Case(seed, _stock_rows(r))
    for _ in range(r.randint(1, 3)):  # kit rows at random positions, each with valid fields for now
        i = r.randint(0, len(case.rows))
        name = r.choice(list(BLOCKS))
        case.rows.insert(i, [None, r.choice([1, 1, 2, 3]), name, VALID_ARGS[name](r)])
    case.kit = [i for i, row in enumerate(case.rows) if row[2] in BLOCKS]
    for i in case.kit:  # from is chosen after insertion, when every index is final
        case.rows[i][0] = _valid_from(r, i)
    if valid:
        return case
    i = case.bad_row = r.choice(case.kit)
    row, kind = case.rows[i], r.choice(["from", "repeats", "args", "args", "container", "name"])
    if kind == "from":
        row[0] = r.choice(bad_froms(i))
    elif kind == "repeats":
        row[1] = r.choice(BAD_REPEATS)
    elif kind == "args":
        row[3] = copy.deepcopy(r.choice(BAD_ARGS[row[2]]))
    elif kind == "container":
        row[3] = copy.deepcopy(r.choice(BAD_ARGS_CONTAINER))
    else:  # a misspelt block name: KeyError with a suggestion
        row[2] = r.choice([row[2].lower() + "x", row[2][:-1], row[2] + "Block"])
    case.what = f"invalid {kind} in row {i}: {row}"
    return case


def expected_channels(rows: list) -> list[int]:
    """Output channels of each row, computed independently of Ultralytics: stock rows give their width, kit rows
    keep the channels of their input (the image's 3 channels for row 0)."""
    ch = []
    for i, (f, _, m, args) in enumerate(rows):
        ch.append((ch[f] if i else 3) if m in BLOCKS else args[0])
    return ch


def build(case: Case) -> tuple[nn.Sequential, list]:
    """Build the rows with Ultralytics' parse_model (the kit's wrapper included), as a model YAML would be."""
    d = {"nc": 2, "backbone": copy.deepcopy(case.rows), "head": []}
    return tasks.parse_model(d, 3, verbose=False)


def _channels_of(block: nn.Module) -> int:
    """Return the channel count a block was built for, from its own weights (SimAM has none: its attribute)."""
    if isinstance(block, NAM):
        return block.bn.num_features
    if isinstance(block, SE):
        return block.fc1.in_channels
    return block.weight.shape[0] if isinstance(block, DAS) else block.c


def check_valid(case: Case) -> None:
    """Build, then check every kit layer's type, repeats, wiring and channels, and its shapes in a forward pass."""
    layers, save = build(case)
    ch, seen = expected_channels(case.rows), {}
    for i in case.kit:
        f, n, name, _ = case.rows[i]
        layer = layers[i]
        blocks = list(layer) if n > 1 else [layer]
        assert len(blocks) == n and all(type(b) is BLOCKS[name] for b in blocks), f"row {i}: {layer!r}"
        assert (layer.i, layer.f) == (i, f) and (f == -1 or f % i in save), f"row {i}: wiring (save={save})"
        want = ch[:i][f] if i else 3
        assert all(_channels_of(b) == want for b in blocks), f"row {i}: built for {_channels_of(blocks[0])}, input has {want}"
        layer.register_forward_hook(lambda m, x, y, i=i: seen.__setitem__(i, (tuple(x[0].shape), tuple(y.shape))))
    model = tasks.BaseModel()
    model.model, model.save = layers, save
    with torch.no_grad():
        model.eval()._predict_once(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(case.seed)))
    for i in case.kit:
        x_shape, y_shape = seen[i]
        assert x_shape[1] == (ch[:i][case.rows[i][0]] if i else 3) and y_shape == x_shape, f"row {i}: {x_shape}->{y_shape}"


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny tensors: one thread avoids oversubscribing the shared CPU cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_random_valid_rows_build_consistently():
    """Every generated valid model builds, each block sized to its input, and keeps the shape in a forward pass."""
    for seed in range(N_VALID):
        case = make_case(seed, valid=True)
        try:
            check_valid(case)
        except Exception as e:  # noqa: BLE001 - re-raised with the reproducible case attached
            raise AssertionError(f"valid case failed: {type(e).__name__}: {e}\n{case.describe()}") from e


def test_random_invalid_rows_raise_clear_errors():
    """Every generated invalid model raises ValueError/KeyError naming the bad row's index; nothing else gets out."""
    kinds = set()
    for seed in range(10_000, 10_000 + N_INVALID):
        case = make_case(seed, valid=False)
        kinds.add(case.what.split(" in row")[0])
        try:
            build(case)
        except (ValueError, KeyError) as e:
            assert f"row {case.bad_row}" in str(e), f"message does not name row {case.bad_row}: {e}\n{case.describe()}"
        except Exception as e:  # noqa: BLE001 - any other exception type is a failure of the test
            raise AssertionError(f"{type(e).__name__} instead of ValueError/KeyError: {e}\n{case.describe()}") from e
        else:
            raise AssertionError(f"built a model from invalid rows\n{case.describe()}")
    assert len(kinds) == 5, kinds  # every kind of mutation was exercised


def test_generator_is_reproducible():
    """The same seed gives the same rows (failures can be replayed from the printed seed)."""
    assert make_case(7, valid=False).rows == make_case(7, valid=False).rows
    assert make_case(7, valid=True).rows != make_case(8, valid=True).rows
