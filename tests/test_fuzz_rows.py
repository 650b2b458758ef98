"""Fuzz test of the parser integration: random valid and invalid kit rows inside a small stock-like backbone.

A seeded generator (reproducible, no extra dependency; each failure prints the seed and the rows) inserts rows of every
registered block (under its name or an alias) at random positions with random ``from`` forms, repeats and arguments
drawn from the block's declared arguments (``Arg``: kind, range, oddness). Valid models must build through
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

from conftest import KIT_BLOCKS

from yolo_attn import BLOCKS as REGISTRY

NAMES = [*(n for n, _ in KIT_BLOCKS), *(a for a, n in REGISTRY.aliases().items() if n in dict(KIT_BLOCKS))]
N_VALID, N_INVALID = 150, 400  # a few seconds on 2 CPU cores
CHANNELS = {3, 8, 16}  # every width in these models: a leading integer equal to one would be read as channels


def _valid_value(arg, r: random.Random):
    """A random value ``arg`` accepts whatever the input channels (an upper bound "c1" is at least the default)."""
    if arg.allow_none and r.random() < 0.3:
        return None
    if arg.kind == "bool":
        return r.random() < 0.5
    high = arg.default if arg.high == "c1" else arg.high
    if arg.kind == "int":
        low = int(arg.low) + arg.low_open if arg.low is not None else 1
        values = [v for v in range(low, int(high if high is not None else low + 16) + 1) if not arg.odd or v % 2]
        return r.choice([v for v in values if v not in CHANNELS] or values)
    low = arg.low if arg.low is not None else 0.0
    high = high if high is not None else low + 10.0
    return r.uniform(low + (high - low) * 0.01, high)  # (low, high]: never exactly an open bound


def valid_args(name: str, r: random.Random) -> list:
    """A random argument list the block accepts: a prefix of its declared arguments, each drawn from its range."""
    args = REGISTRY.get(name).args
    return [_valid_value(a, r) for a in args[: r.randint(0, len(args))]]


def _bad_values(arg) -> list:
    """Values ``arg`` refuses: wrong types, out of range, NaN, even for odd arguments (never a channel count)."""
    if arg.kind == "bool":
        return ["yes", 1, 0.5, [True]] + ([] if arg.allow_none else [None])
    bad = ["abc", True, math.nan] + ([] if arg.allow_none else [None])
    if arg.low is not None:
        bad.append(arg.low if arg.low_open else arg.low - 1)
    if arg.high is not None:
        high = 10**6 if arg.high == "c1" else arg.high + 1
        bad.append(next(v for v in (high, high + 2, high + 4) if v not in CHANNELS))
    if arg.kind == "int":
        bad.append(arg.default + 0.5 if isinstance(arg.default, int) else 2.5)
    if arg.odd:
        bad.append(next(v for v in (2, 4, 6) if v not in CHANNELS and (arg.high is None or v <= arg.high)))
    return bad


def bad_args(name: str) -> list[list]:
    """Argument lists the block must refuse: each argument bad in turn (earlier ones at defaults), and one too many."""
    args = REGISTRY.get(name).args
    out = [[*(a.default for a in args[:j]), v] for j, arg in enumerate(args) for v in _bad_values(arg)]
    out.append([*(a.default for a in args), 1])
    # a leading integer equal to a width here would be read as the community's channel argument (a valid row)
    return [x for x in out if not (type(x[0]) is int and x[0] in CHANNELS)]


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
        name = r.choice(NAMES)
        case.rows.insert(i, [None, r.choice([1, 1, 2, 3]), name, valid_args(name, r)])
    case.kit = [i for i, row in enumerate(case.rows) if row[2] in REGISTRY]
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
        row[3] = copy.deepcopy(r.choice(bad_args(row[2])))
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
        ch.append((ch[f] if i else 3) if m in REGISTRY else args[0])
    return ch


def build(case: Case) -> tuple[nn.Sequential, list]:
    """Build the rows with Ultralytics' parse_model (the kit's wrapper included), as a model YAML would be."""
    d = {"nc": 2, "backbone": copy.deepcopy(case.rows), "head": []}
    return tasks.parse_model(d, 3, verbose=False)


def check_valid(case: Case) -> None:
    """Build, then check every kit layer's type, repeats, wiring and channels, and its shapes in a forward pass."""
    layers, save = build(case)
    ch, seen = expected_channels(case.rows), {}
    for i in case.kit:
        f, n, name, _ = case.rows[i]
        layer = layers[i]
        blocks = list(layer) if n > 1 else [layer]
        assert len(blocks) == n and all(type(b) is REGISTRY.get(name) for b in blocks), f"row {i}: {layer!r}"
        assert (layer.i, layer.f) == (i, f) and (f == -1 or f % i in save), f"row {i}: wiring (save={save})"
        want = ch[:i][f] if i else 3
        assert all(b.c1 == want for b in blocks), f"row {i}: built for {blocks[0].c1}, input has {want}"
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
