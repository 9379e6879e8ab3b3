"""flows.rank.bulk.close_pairs against a plain per-pair reference, where the caller passes
the same slot arrays for several pairs (one array per unit, as PaperIndex.graded_many does);
and pack/unpack, which keep a keyword's arrays in one bytes object."""

from __future__ import annotations

import random

import numpy as np

from hypothesis import given
from hypothesis import strategies as st

from flows.rank.bulk import (PACKED_WON_WIDTH, PAPER_NUMBER, close_pairs, pack, unpack, unpack_numbers, unpack_won,
                             won_at)

WINDOW = 4


def _reference(first: np.ndarray, second: np.ndarray, offsets: np.ndarray) -> list[int]:
    papers = set()
    for a in first.tolist():
        if any(abs(a - b) < WINDOW for b in second.tolist()):
            papers.add(int(np.searchsorted(offsets, a, side="right") - 1))
    return sorted(papers)


def _field(rng: random.Random, papers: int) -> tuple[np.ndarray, int]:
    """Paper offsets as FieldIndex.positions numbers slots: papers WINDOW apart at least."""
    offsets, at = [], 0
    for _ in range(papers):
        offsets.append(at)
        at += rng.randint(5, 60) + WINDOW
    return np.array(offsets, np.int64), at


def _slots(rng: random.Random, offsets: np.ndarray, span: int, share: float) -> np.ndarray:
    ends = list(offsets[1:].tolist()) + [span]
    found = [s for start, end in zip(offsets.tolist(), ends) for s in range(start, end - WINDOW)
             if rng.random() < share]
    return np.array(found, np.int64)


def test_shared_arrays_and_repeated_pairs_give_each_pair_its_own_papers():
    rng = random.Random(11)
    offsets, span = _field(rng, 60)
    units = [_slots(rng, offsets, span, share) for share in (0.3, 0.1, 0.02, 0.005, 0.0, 0.15)]
    pairs = [(rng.randrange(len(units)), rng.randrange(len(units))) for _ in range(40)]
    pairs += pairs[:5]  # the same two units again (other keywords)
    first = [units[i] for i, _ in pairs]
    second = [units[j] for _, j in pairs]
    found = close_pairs(first, second, offsets, WINDOW, span)
    assert len(found) == len(pairs)
    for (i, j), papers in zip(pairs, found):
        assert papers.tolist() == _reference(units[i], units[j], offsets)
    # copies instead of shared arrays: the same answers
    copies = close_pairs([a.copy() for a in first], [b.copy() for b in second], offsets, WINDOW, span)
    assert [a.tolist() for a in copies] == [a.tolist() for a in found]


@given(st.lists(st.tuples(st.integers(0, 2**31 - 1), st.floats(allow_nan=False), st.integers(-1, 127),
                          st.integers(-1, 127)), max_size=40))
def test_packed_arrays_read_back_bit_for_bit(entries):
    numbers = np.array([entry[0] for entry in entries], PAPER_NUMBER)
    values = np.array([entry[1] for entry in entries], np.float64)
    won = np.array([entry[2:] for entry in entries], np.int8).reshape(len(entries), 2)
    for packed, with_won in ((pack(numbers, values), False), (pack(numbers, values, won), True)):
        assert isinstance(packed, bytes) and len(packed) == (PACKED_WON_WIDTH if with_won else 12) * numbers.size
        papers, scores = unpack(packed, won=with_won)
        assert papers.dtype == PAPER_NUMBER and scores.dtype == np.float64
        assert papers.tobytes() == numbers.tobytes() and scores.tobytes() == values.tobytes()
        assert not papers.flags.writeable and not scores.flags.writeable  # shared by every subscriber
        assert papers.flags.aligned and scores.flags.aligned
        assert unpack_numbers(packed, won=with_won).tobytes() == numbers.tobytes()
    assert unpack_won(pack(numbers, values, won)).tolist() == won.tolist()
    assert [won_at(pack(numbers, values, won), n) for n in range(len(entries))] == [tuple(pair) for pair in won.tolist()]
