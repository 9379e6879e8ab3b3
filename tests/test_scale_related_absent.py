"""A related-terms model learned from a year of papers names terms that the week's papers
do not hold: ranking must still pack those keywords' (empty) related scores."""

import numpy as np

from flows.rank.bulk import pack, unpack, weighted_shares


def test_expansions_with_no_postings_give_float_values_that_pack():
    # two units, neither in any paper of the index (CSR rows of length 0), three papers
    indptr = np.array([0, 0, 0], dtype=np.int64)
    papers = np.zeros(0, dtype=np.int32)
    weights = np.zeros(0, dtype=np.float64)
    expansions = [(np.array([0, 1]), np.array([0.6, 0.4]))]
    [(numbers, values)] = weighted_shares(indptr, papers, weights, 3, expansions, 0.1)
    assert values.dtype == np.float64 and len(values) == 0
    found_numbers, found_values = unpack(pack(numbers, values))  # failed: values were int64
    assert len(found_numbers) == 0 and len(found_values) == 0


def test_a_chunk_mixing_empty_and_found_expansions_is_unchanged():
    indptr = np.array([0, 2, 2], dtype=np.int64)  # unit 0 in papers 0 and 2; unit 1 in none
    papers = np.array([0, 2], dtype=np.int32)
    weights = np.array([1.0, 0.5])
    shares = weighted_shares(indptr, papers, weights, 3, [(np.array([0]), np.array([1.0])),
                                                          (np.array([1]), np.array([1.0]))], 0.1)
    assert [list(numbers) for numbers, _ in shares] == [[0, 2], []]
    assert [list(values) for _, values in shares] == [[1.0, 0.5], []]
    assert all(values.dtype == np.float64 for _, values in shares)
