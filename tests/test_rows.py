"""YAML row arithmetic: ``from`` resolution, inserting rows with every reference rewritten, stock positions."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from yolo_attn import rows
from yolo_attn.rows import StockLayout, absolute, inputs, insert_rows, remove_rows

ROWS = [  # a small model: offsets, an absolute index, a list with both, a head list
    [-1, 1, "Conv", [16]],  # 0
    [-1, 1, "Conv", [32]],  # 1
    [-1, 1, "C2f", [32]],  # 2
    [-2, 1, "Conv", [64]],  # 3 reads 1
    [[-1, 2], 1, "Concat", [1]],  # 4 reads 3, 2
    [-1, 1, "C2f", [64]],  # 5
    [[2, -1], 1, "Detect", [2]],  # 6 reads 2, 5
]


def reads(rows: list[list]) -> list[list[int]]:
    """Return the absolute rows each row reads."""
    return [inputs(i, row[0]) for i, row in enumerate(rows)]


def test_absolute_and_inputs():
    """Offsets count back from the row, absolute indices stay, row 0's -1 is the image."""
    assert absolute(0, -1) == -1 and absolute(5, -1) == 4 and absolute(5, -3) == 2 and absolute(5, 2) == 2
    assert reads(ROWS) == [[-1], [0], [1], [1], [3, 2], [4], [2, 5]]


@pytest.mark.parametrize(
    "i, f, match",
    [
        (3, 3, r"row 3: 'from' 3 does not refer to an earlier row: each must be an index in \[-3, 2\]"),
        (3, -4, "does not refer to an earlier row"),
        (0, 0, r"row 0: .* \[-1, -1\]"),  # row 0 reads only the image
        (0, -2, "does not refer to an earlier row"),
        (2, [-1, 5], "does not refer to an earlier row"),
        (2, "-1", "must be an integer or a list of integers"),
        (2, True, "must be an integer or a list of integers"),
        (2, [], "empty list"),
    ],
)
def test_inputs_rejects(i, f, match):
    """A reference to the row itself, a later row, before row 0, or a non-integer is refused with the allowed range."""
    with pytest.raises(ValueError, match=match):
        inputs(i, f)


def test_single_input():
    """``single=True`` (a pass-through row) refuses a list, naming the allowed indices."""
    assert inputs(4, -2, single=True) == [2]
    with pytest.raises(ValueError, match=r"row 4: 'from' must be one earlier layer: an index in \[-4, 3\]"):
        inputs(4, [-1], single=True)


def test_insert_rewrites_every_reference():
    """After row k, references to k read the new row; others follow the shift; offsets stay offsets."""
    ins = insert_rows(ROWS, [2, 5, 2], lambda k: [-1, 1, "X", [k]])
    assert ins.inserted == {2: 3, 5: 7} and ins.new_index == {0: 0, 1: 1, 2: 2, 3: 4, 4: 5, 5: 6, 6: 8}
    assert [r[0] for r in ins.rows] == [-1, -1, -1, -1, -3, [-1, 3], -1, -1, [3, -1]]
    assert [r[2:] for r in ins.rows] == [r[2:] for r in ROWS[:3]] + [["X", [2]]] + [r[2:] for r in ROWS[3:6]] + [
        ["X", [5]],
        ROWS[6][2:],
    ]
    # read through the inserted rows, every stock row reads what it read before
    new = reads(ins.rows)
    back = {v: k for k, v in ins.new_index.items()} | {v: k for k, v in ins.inserted.items()}
    for i, old in enumerate(ROWS):
        assert [back.get(j, j) for j in new[ins.new_index[i]]] == reads(ROWS)[i]


def test_insert_rejects_out_of_range():
    """Rows to insert after must exist."""
    with pytest.raises(ValueError, match=r"cannot insert after rows \[7\]: the model has rows 0-6"):
        insert_rows(ROWS, [7], lambda k: [-1, 1, "X", []])


def random_rows(rng: random.Random, n: int) -> list[list]:
    """Return ``n`` random valid rows mixing offsets, absolute indices and lists."""
    rows = [[-1, 1, "M", []]]
    for i in range(1, n):
        refs = [rng.choice([rng.randrange(i), -rng.randint(1, i)]) for _ in range(rng.choice([1, 1, 2, 3]))]
        rows.append([refs if len(refs) > 1 or rng.random() < 0.2 else refs[0], 1, "M", [i]])
    return rows


@pytest.mark.parametrize("seed", range(20))
def test_remove_inverts_insert(seed):
    """remove_rows(insert_rows(rows)) gives the rows back exactly, and StockLayout wires in stock positions."""
    rng = random.Random(seed)
    rows = random_rows(rng, rng.randint(2, 25))
    after = rng.sample(range(len(rows)), rng.randint(1, len(rows)))
    ins = insert_rows(rows, after, lambda k: [-1, 1, "X", []])
    assert remove_rows(ins.rows, list(ins.inserted.values())) == rows
    layout = StockLayout([r[0] for r in ins.rows], [r[2] == "X" for r in ins.rows])
    assert layout.stock == [ins.new_index[i] for i in range(len(rows))]
    assert [layout.wiring(i) for i in layout.stock] == reads(rows)
    assert {layout.carried(a) for a in ins.inserted.values()} == set(after)


def test_stock_layout_places_runs():
    """Consecutive inserted rows are placed by (stock rows before them, order in the run)."""
    layout = StockLayout([-1, -1, -1, -1, [-1, 0]], [False, True, True, False, False])
    assert layout.stock == [0, 3, 4] and layout.position == {0: 0, 3: 1, 4: 2}
    assert layout.inserted == {1: (1, 0), 2: (1, 1)}
    assert layout.wiring(3) == [0] and layout.wiring(4) == [1, 0] and layout.wiring(0) == [-1]
    with pytest.raises(ValueError, match="must be one earlier layer"):
        StockLayout([-1, [-1, 0]], [False, True])  # an inserted row passes one input on


def test_no_ultralytics_import():
    """The module is plain Python: loaded on its own (outside the package), it imports neither Ultralytics nor torch."""
    code = (
        "import importlib.util as u, sys; s = u.spec_from_file_location('rows', sys.argv[1]); "
        "m = sys.modules['rows'] = u.module_from_spec(s); s.loader.exec_module(m); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'ultralytics', 'torch', 'yolo_attn'}))"
    )
    out = subprocess.run([sys.executable, "-c", code, rows.__file__], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
