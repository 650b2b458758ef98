"""Row arithmetic of Ultralytics model YAMLs: ``from`` references, inserted rows, stock positions. No Ultralytics.

A model YAML is a list of rows ``[from, repeats, module, args]`` (backbone then head, numbered from 0). ``from`` is
one reference or a list of them; a reference is an absolute row index (``>= 0``) or an offset from the row itself
(``-1`` is the previous row). Row 0 reads the image through ``-1``, which is kept as ``-1`` here.

The kit inserts pass-through rows (an attention row ``[-1, 1, BLOCK, args]`` right after the row it refines), so it
needs three operations, and each lives here once:

- ``inputs``: the absolute rows a row reads, checked to be earlier rows;
- ``insert_rows``: insert rows and rewrite every later reference (``make-config``);
- ``StockLayout``: the rows of a model that holds inserted rows, numbered as in the model without them ("stock
  positions"), with each stock row's inputs in those positions (weight transfer);
  ``remove_rows`` is the inverse of ``insert_rows`` on the YAML rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

__all__ = ["From", "Insertion", "StockLayout", "absolute", "earlier_range", "inputs", "insert_rows", "remove_rows"]

From = Union[int, list[int]]  # Union: a runtime alias, and the kit supports Python 3.9
"""A row's ``from`` field: one reference or a list of references."""

IMAGE = -1
"""The absolute index ``inputs`` gives for the image (row 0's ``-1``)."""


def absolute(i: int, ref: int) -> int:
    """Return the absolute row that row ``i`` reads through the reference ``ref`` (row 0's ``-1``: the image, -1).

    Args:
        i (int): The reading row.
        ref (int): An absolute index (``>= 0``) or an offset (``< 0``).

    Returns:
        (int): The absolute row index, or ``-1`` for the image.
    """
    return ref if ref >= 0 or i == 0 else i + ref


def earlier_range(i: int) -> tuple[int, int]:
    """Return the lowest and highest reference row ``i`` may use (row 0: only ``-1``, the image).

    Args:
        i (int): The reading row.

    Returns:
        (tuple[int, int]): ``(-i, i - 1)``, or ``(-1, -1)`` for row 0.
    """
    return -max(i, 1), max(i - 1, -1)


def inputs(i: int, f: object, single: bool = False) -> list[int]:
    """Return the absolute rows row ``i`` reads, or raise a ``ValueError`` naming the row and the allowed values.

    Args:
        i (int): The reading row.
        f (object): Its ``from`` field.
        single (bool): Require exactly one reference (a plain integer, not a list).

    Returns:
        (list[int]): The absolute row indices (``[-1]`` for row 0 reading the image).
    """
    earlier = "an index in [{}, {}]".format(*earlier_range(i))
    if single and (isinstance(f, bool) or not isinstance(f, int)):
        raise ValueError(f"row {i}: 'from' must be one earlier layer: {earlier}, got {f!r}")
    refs = f if isinstance(f, list) else [f]
    if not refs:
        raise ValueError(f"row {i}: 'from' is an empty list; give one or more earlier layers, each {earlier}")
    out = []
    for ref in refs:
        if isinstance(ref, bool) or not isinstance(ref, int):
            raise ValueError(f"row {i}: 'from' must be an integer or a list of integers, got {f!r}")
        j = absolute(i, ref)
        if not (ref == -1 if i == 0 else 0 <= j < i):
            raise ValueError(f"row {i}: 'from' {f!r} does not refer to an earlier row: each must be {earlier}")
        out.append(j)
    return out


def _rewrite(f: From, i: int, ni: int, target: Callable[[int], int]) -> From:
    """Return ``f`` of old row ``i`` (now row ``ni``) with each reference pointing at ``target(old absolute row)``.

    Absolute references stay absolute and offsets stay offsets (``-1`` stays ``-1`` when the row it reads is still
    the previous one); the image reference of row 0 is kept.
    """

    def one(ref: int) -> int:
        j = absolute(i, ref)
        if j < 0:
            return ref  # the image
        t = target(j)
        return t if ref >= 0 else t - ni

    return [one(r) for r in f] if isinstance(f, list) else one(f)


@dataclass
class Insertion:
    """The result of ``insert_rows``.

    Attributes:
        rows (list[list]): All rows after insertion.
        new_index (dict[int, int]): Old row index -> its new index.
        inserted (dict[int, int]): Old row ``k`` -> index of the row inserted after it.
    """

    rows: list[list]
    new_index: dict[int, int]
    inserted: dict[int, int]


def insert_rows(rows: Sequence[Sequence], after: Sequence[int], new_row: Callable[[int], list]) -> Insertion:
    """Insert ``new_row(k)`` after each row ``k`` of ``after`` and rewrite every ``from`` reference.

    The inserted row refines ``k``'s output, so every later reference to ``k`` (through ``-1``, an offset, an
    absolute index or a list) reads the inserted row instead; every other reference follows the shifted rows.

    Args:
        rows (Sequence[Sequence]): The rows ``[from, repeats, module, args]``; their references are checked.
        after (Sequence[int]): Rows to insert after (any order; duplicates count once), each in ``[0, len(rows))``.
        new_row (Callable[[int], list]): Returns the row to insert after row ``k``; it should read ``-1``.

    Returns:
        (Insertion): The new rows and the index maps.
    """
    targets = sorted(set(after))
    bad = [k for k in targets if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(rows)]
    if bad:
        raise ValueError(f"cannot insert after rows {bad}: the model has rows 0-{len(rows) - 1}")
    for i, row in enumerate(rows):
        inputs(i, row[0])
    new_index, shift = {}, 0
    for i in range(len(rows)):
        new_index[i] = i + shift
        shift += i in targets
    inserted = {k: new_index[k] + 1 for k in targets}
    out = []
    for i, (f, *rest) in enumerate(rows):
        out.append([_rewrite(f, i, new_index[i], lambda j: inserted.get(j, new_index[j])), *rest])
        if i in inserted:
            out.append(new_row(i))
    return Insertion(out, new_index, inserted)


def remove_rows(rows: Sequence[Sequence], drop: Sequence[int]) -> list[list]:
    """Remove pass-through rows and rewrite every reference: the inverse of ``insert_rows``.

    A reference to a removed row reads what that row read (its single input), so removing the rows ``insert_rows``
    inserted gives back the original rows exactly.

    Args:
        rows (Sequence[Sequence]): The rows ``[from, repeats, module, args]``.
        drop (Sequence[int]): Rows to remove; each must read exactly one earlier row.

    Returns:
        (list[list]): The remaining rows.
    """
    layout = StockLayout([row[0] for row in rows], [i in set(drop) for i in range(len(rows))])
    return [[_rewrite(rows[i][0], i, p, layout.carried), *rows[i][1:]] for p, i in enumerate(layout.stock)]


class StockLayout:
    """A model's rows split into stock rows and inserted pass-through rows, wired in stock positions.

    The stock position of a stock row is its index in the model without the inserted rows. An inserted row passes
    its one input on, so a stock row that reads an inserted row reads, in stock positions, what that row carries.

    Attributes:
        froms (list[From]): Each row's ``from``.
        stock (list[int]): Row index of each stock position.
        position (dict[int, int]): Stock row index -> stock position.
        inserted (dict[int, tuple[int, int]]): Inserted row -> (stock rows before it, its order in its run of
            consecutive inserted rows): where it sits, independent of how many rows precede it.
    """

    def __init__(self, froms: Sequence[From], inserted: Sequence[bool]):
        """Split the rows.

        Args:
            froms (Sequence[From]): Each row's ``from`` (YAML rows' first field, or a built layer's ``.f``).
            inserted (Sequence[bool]): Per row, whether it is an inserted pass-through row.
        """
        if len(froms) != len(inserted):
            raise ValueError(f"{len(froms)} 'from' fields but {len(inserted)} row flags")
        self.froms = list(froms)
        self.stock: list[int] = []
        self.inserted: dict[int, tuple[int, int]] = {}
        run = 0
        for i, (f, extra) in enumerate(zip(self.froms, inserted)):
            inputs(i, f, single=bool(extra))
            if extra:
                self.inserted[i] = (len(self.stock), run)
                run += 1
            else:
                self.stock.append(i)
                run = 0
        self.position = {i: p for p, i in enumerate(self.stock)}

    def carried(self, j: int) -> int:
        """Return the stock position whose output row ``j`` carries (``-1``: the image).

        Args:
            j (int): A row index (``-1``: the image).

        Returns:
            (int): The stock position.
        """
        while j in self.inserted:
            j = inputs(j, self.froms[j])[0]
        return IMAGE if j < 0 else self.position[j]

    def wiring(self, i: int) -> list[int]:
        """Return the stock positions (``-1``: the image) that row ``i`` reads.

        Args:
            i (int): A row index.

        Returns:
            (list[int]): One stock position per reference of its ``from``.
        """
        return [self.carried(j) for j in inputs(i, self.froms[i])]
