"""Numeric kernels that work out many keywords' arrays in one pass.

A day's subscribers bring tens of thousands of distinct keywords; each needs a few small
array operations (its related terms' share of each paper, its graded levels' best score
per field, where its words stand close together). Done one keyword at a time, numpy's
per-call overhead dwarfs the arithmetic; here each step runs once over a whole list of
keywords, every keyword's entries laid end to end with its number as an offset.

Every result is bit for bit what the one-keyword formula gives: sums are taken in the
same order (``np.bincount`` adds its weights in the order given, each bin from 0.0, and
each keyword's entries keep their own order), products are the same products, and a
maximum is a maximum. ``flows.rank.keyword_scores`` uses these for a single keyword too, so there
is one code path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_NONE = np.zeros(0, np.intp)
# Paper numbers in the arrays an index keeps per keyword for the rest of the run (scores,
# related shares): half the bytes of intp, and every use (indexing, bincount, searchsorted,
# concatenating) gives the same results.
PAPER_NUMBER = np.int32
_NO_VALUES = np.zeros(0)
# Dense scratch of keywords × papers float64 at most this many cells (≈ 16 MB): longer
# lists are cut into chunks.
MAX_CELLS = 2_000_000
MAX_ENTRIES = 80_000  # postings entries per pass (≈ 30 keywords' related terms)


# A keyword's arrays kept for the run (see pack): float64 values, then int32 paper numbers,
# then, for graded scores, an int8 pair per paper.
PACKED_WIDTH = 12  # bytes per paper: values and numbers
PACKED_WON_WIDTH = 14  # with the winning levels


def pack(numbers: np.ndarray, values: np.ndarray, won: np.ndarray | None = None) -> bytes:
    """A keyword's aligned arrays (int32 paper numbers, float64 values and maybe int8 pairs
    of winning levels) as one bytes object, for the caches that keep them per keyword for
    the run: tens of thousands of keywords kept two or three small arrays each, and every
    ndarray costs ≈ 170 bytes besides its data (the object, its shape and its data block),
    a bytes object ≈ 40. The values come first, so that each array starts aligned (bytes
    data is 16-aligned)."""
    assert values.dtype == np.float64 and numbers.dtype == PAPER_NUMBER and (won is None or won.dtype == np.int8)
    if won is None:
        return values.tobytes() + numbers.tobytes()
    return b"".join((values.tobytes(), numbers.tobytes(), won.tobytes()))


def unpack(packed: bytes, won: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pack`'s (numbers, values), as read-only views of the bytes (no copy); ``won``:
    packed with winning levels."""
    count = len(packed) // (PACKED_WON_WIDTH if won else PACKED_WIDTH)
    return np.frombuffer(packed, PAPER_NUMBER, count, 8 * count), np.frombuffer(packed, np.float64, count)


def unpack_numbers(packed: bytes, won: bool = False) -> np.ndarray:
    """:func:`unpack`'s numbers alone (one view, where the values are not wanted)."""
    count = len(packed) // (PACKED_WON_WIDTH if won else PACKED_WIDTH)
    return np.frombuffer(packed, PAPER_NUMBER, count, 8 * count)


def unpack_won(packed: bytes) -> np.ndarray:
    """:func:`pack`'s winning levels (``count`` × 2 int8) of graded scores packed with them."""
    count = len(packed) // PACKED_WON_WIDTH
    return np.frombuffer(packed, np.int8, 2 * count, PACKED_WIDTH * count).reshape(count, 2)


_SIGNED = (*range(128), *range(-128, 0))  # a byte as int8


def won_at(packed: bytes, position: int) -> tuple[int, int]:
    """The winning levels (title, abstract) of the ``position``-th paper of graded scores
    packed with them: read straight from the bytes, as explanations want one paper's."""
    at = PACKED_WIDTH * (len(packed) // PACKED_WON_WIDTH) + 2 * position
    return _SIGNED[packed[at]], _SIGNED[packed[at + 1]]


def _locked(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def gather(indptr: np.ndarray, rows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For CSR row numbers grouped per owner: (entry positions in row order, each entry's
    owner, each row's length). ``rows[k]`` are owner k's rows, in the order its entries
    must keep."""
    sizes = np.fromiter(map(len, rows), np.intp, len(rows))
    ids = np.concatenate(rows) if rows else _NONE
    starts = indptr[ids]
    lengths = indptr[ids + 1] - starts
    total = int(lengths.sum())
    # each row's entries: its start repeated, plus 0, 1, 2, … within the row
    ends = np.cumsum(lengths)
    positions = np.repeat(starts - ends + lengths, lengths) + np.arange(total)
    owners = np.repeat(np.repeat(np.arange(len(rows)), sizes), lengths)
    return positions, owners, lengths


def weighted_shares(indptr: np.ndarray, papers: np.ndarray, weights: np.ndarray, size: int,
                    expansions: Sequence[tuple[np.ndarray, np.ndarray]], floor: float
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per expansion (unit rows of the CSR ``indptr/papers/weights``, a weight per unit):
    the papers where Σ unit weight · the unit's weight in the paper reaches ``floor``, and
    that sum. The same as, per expansion, ``np.bincount`` over its units' postings laid
    end to end (units in order, papers ascending), each entry times its unit's weight."""
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for chunk in _chunks(indptr, size, expansions):
        positions, owners, lengths = gather(indptr, [units for units, _ in chunk])
        factors = np.concatenate([unit_weights for _, unit_weights in chunk]) if chunk else _NO_VALUES
        values = weights[positions] * np.repeat(factors, lengths)
        # float64 also when no unit has a posting: bincount of nothing is int64 zeros whatever
        # the weights (seen once a model learned from a year of papers meets a week's index)
        dense = np.bincount(owners * size + papers[positions], values, len(chunk) * size).astype(
            np.float64, copy=False).reshape(len(chunk), size)
        rows, columns = np.nonzero(dense >= floor)
        kept = dense[rows, columns]
        bounds = np.searchsorted(rows, np.arange(len(chunk) + 1))
        for k in range(len(chunk)):
            start, end = bounds[k], bounds[k + 1]
            found.append((_locked(columns[start:end].astype(PAPER_NUMBER)), _locked(kept[start:end].copy())))
    return found


def _chunks(indptr: np.ndarray, size: int, expansions: Sequence[tuple[np.ndarray, np.ndarray]]):
    """The expansions in runs of at most MAX_ENTRIES postings entries (and MAX_CELLS dense
    cells): arrays that stay in the processor's cache run several times faster than one
    pass over everything."""
    # each expansion's postings entries: its units' row lengths summed, as differences of
    # running totals (one pass for all of them)
    every = np.concatenate([units for units, _ in expansions]) if expansions else _NONE
    ends = np.concatenate(([0], np.cumsum(indptr[every + 1] - indptr[every])))
    bounds = np.concatenate(([0], np.cumsum([units.size for units, _ in expansions], dtype=np.intp)))
    sizes = (ends[bounds[1:]] - ends[bounds[:-1]]).tolist()
    most = max(1, MAX_CELLS // max(size, 1))
    start, entries = 0, 0
    for end, entry in enumerate(sizes):
        if end > start and (entries + entry > MAX_ENTRIES or end - start >= most):
            yield expansions[start:end]
            start, entries = end, 0
        entries += entry
    if start < len(expansions):
        yield expansions[start:]


def close_pairs(first: Sequence[np.ndarray], second: Sequence[np.ndarray], offsets: np.ndarray,
                window: int, span: int) -> list[np.ndarray]:
    """Per pair of ascending slot arrays (numbered as ``FieldIndex.positions`` numbers a
    field's slots, each paper starting at its ``offsets`` entry and at least ``window``
    slots after the previous paper's last): the papers (ascending, unique) where a slot
    of the first lies fewer than ``window`` slots from one of the second. ``span`` is
    above every slot number."""
    count = len(first)
    found: list[np.ndarray] = [_NONE] * count
    # Keywords that differ elsewhere may pair the same two units (the same arrays): once each.
    same: dict[tuple[int, int], int] = {}
    todo, again = [], []
    for k in range(count):
        if first[k].size and second[k].size:
            seen = same.setdefault((id(first[k]), id(second[k])), k)
            if seen == k:
                todo.append(k)
            else:
                again.append((k, seen))
    if not todo:
        return found
    # Two close slots are in the same paper, so the relation is symmetric: look the shorter
    # array's slots up in the longer one (a frequent word's thousands of slots are then
    # never searched for one by one).
    first, second = ([a if a.size <= b.size else b for a, b in zip(first, second)],
                     [b if a.size <= b.size else a for a, b in zip(first, second)])
    # The longer arrays are mostly a few frequent units' ("model", "learning"), met again and
    # again (the caller passes one array per unit): each distinct one is laid out once, in a
    # block of its own, and every pair's shorter array is shifted into its partner's block.
    # Blocks lie span + 2 · window apart, so no slot is close to another block's.
    block_of: dict[int, int] = {}
    blocks: list[np.ndarray] = []
    pair_block = []
    for k in todo:
        block = block_of.get(id(second[k]))
        if block is None:
            block = block_of[id(second[k])] = len(blocks)
            blocks.append(second[k])
        pair_block.append(block)
    step = span + 2 * window
    a_sizes = np.fromiter((first[k].size for k in todo), np.intp, len(todo))
    shift = np.array(pair_block, np.int64) * step
    a = np.concatenate([first[k] for k in todo]) + np.repeat(shift, a_sizes)
    b = np.concatenate(blocks) + np.repeat(np.arange(len(blocks), dtype=np.int64) * step,
                                           np.fromiter(map(len, blocks), np.intp, len(blocks)))
    at = np.searchsorted(b, a)
    after = b[np.minimum(at, b.size - 1)]
    before = b[np.maximum(at - 1, 0)]
    close = (np.abs(after - a) < window) | (np.abs(a - before) < window)
    owner = np.repeat(np.arange(len(todo)), a_sizes)[close]
    papers = np.searchsorted(offsets, a[close] - shift[owner], side="right") - 1
    # The pairs come in order and each pair's slots ascend (so do their papers): the keys
    # ascend, and dropping repeats is np.unique without its sort.
    keys = owner.astype(np.int64) * len(offsets) + papers
    if keys.size:
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    owner, papers = np.divmod(keys, len(offsets))
    papers = papers.astype(PAPER_NUMBER)  # kept for the run (graded levels' papers): half the bytes
    bounds = np.searchsorted(owner, np.arange(len(todo) + 1))
    for n, k in enumerate(todo):
        found[k] = papers[bounds[n]:bounds[n + 1]]
    for k, seen in again:
        found[k] = found[seen]
    return found


def best_levels(size: int, count: int, owners: np.ndarray, fields: np.ndarray, papers: np.ndarray,
                values: np.ndarray, levels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per keyword, its score in each paper where some level scored: per field the best
    level's score (the first level with the highest, as levels are numbered), then the
    abstract's plus the title's.

    One entry per (keyword ``owners``, field 0 title / 1 abstract, level, paper) with its
    score. Returns per keyword (papers ascending, scores, and per paper the winning level
    number in the title and in the abstract, -1 for none, as int8 pairs)."""
    group = (owners.astype(np.int64) * size + papers) * 2 + fields
    # Per (keyword, paper, field) its best score, and the first level reaching it. The
    # entries come by keyword, field, level, then paper: a stable sort by group keeps each
    # group's levels in order (and merges the runs of sorted papers quickly).
    order = np.argsort(group, kind="stable")
    group, value, level = group[order], values[order], levels[order]
    starts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
    best = np.maximum.reduceat(value, starts)
    reaching = np.flatnonzero(value == np.repeat(best, np.diff(np.append(starts, group.size))))
    kept = reaching[np.concatenate(([True], group[reaching[1:]] != group[reaching[:-1]]))]
    group, value, level = group[kept], value[kept], level[kept]
    # A (keyword, paper) cell's fields are neighbours, the title's first: the cells ascend
    # without another sort.
    cell, field = np.divmod(group, 2)
    first = np.concatenate(([True], cell[1:] != cell[:-1]))
    cells, where = cell[first], np.cumsum(first, dtype=np.intp) - 1
    # abstract + title: IEEE addition is commutative, and a field that did not score adds
    # nothing (bincount starts each bin at 0.0, and 0.0 + x is x)
    total = np.bincount(where, value, cells.size)
    won = np.full((cells.size, 2), -1, np.int8)
    won[where, field] = level
    owner, number = np.divmod(cells, size)
    bounds = np.searchsorted(owner, np.arange(count + 1))
    found = []
    for k in range(count):
        start, end = bounds[k], bounds[k + 1]
        found.append((_locked(number[start:end].astype(PAPER_NUMBER)), _locked(total[start:end].copy()),
                      _locked(won[start:end].copy())))
    return found
