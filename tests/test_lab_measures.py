"""The lab's measures (relay/lab_measures.py) on samples small enough to count by hand."""

import math

import pytest

from relay.lab_measures import (SampleFacts, best_columns, column_measures, cut_share, distinct_n, formatted,
                                mean_logprob, repeated_ngram_rate)


def test_distinct_n_counts_ngrams_over_the_column_never_across_samples():
    # tokens a b a b | a c: unigrams 6, distinct {a,b,c} = 3 -> 0.5
    # bigrams (a,b)(b,a)(a,b) | (a,c): 4, distinct 3 -> 0.75 ((b,a) across the samples' seam is not counted)
    assert distinct_n([[1, 2, 1, 2], [1, 3]], 1) == pytest.approx(3 / 6)
    assert distinct_n([[1, 2, 1, 2], [1, 3]], 2) == pytest.approx(3 / 4)
    assert distinct_n([[1]], 2) is None


def test_repeated_ngram_rate_counts_phrases_already_seen_earlier_in_the_same_text():
    # 1 2 3 1 2 3 1: trigrams 123 231 312 123 231 -> the last two repeat earlier ones: 2/5
    # 1 2 3 (another sample): one trigram, new in its own text even though the first sample had it: 0/1
    assert repeated_ngram_rate([[1, 2, 3, 1, 2, 3, 1]]) == pytest.approx(2 / 5)
    assert repeated_ngram_rate([[1, 2, 3, 1, 2, 3, 1], [1, 2, 3]]) == pytest.approx(2 / 6)
    assert repeated_ngram_rate([[1, 2]]) is None


def test_mean_logprob_is_the_mean_natural_log_of_every_recorded_probability():
    # ln 0.5, ln 0.25 | ln 1 -> (-0.6931 - 1.3863 + 0) / 3
    assert mean_logprob([[0.5, 0.25], [1.0]]) == pytest.approx((math.log(0.5) + math.log(0.25)) / 3)
    assert mean_logprob([[0.5], None]) is None  # one sample without probabilities: unknown, not a guess


def test_cut_share_is_cut_characters_over_all_written():
    assert cut_share([30, 50], [20, 0]) == pytest.approx(20 / 100)
    assert cut_share([0], [0]) is None


def test_column_measures_and_the_best_column_per_measure():
    loop = SampleFacts("가나가나", [1, 2, 3, 1, 2, 3], {"output_tokens": 6, "seconds": 2.0,
                                                     "tokens": {"p": [0.5] * 6}}, trimmed_chars=4)
    fresh = SampleFacts("가나다라마바", [1, 2, 3, 4, 5, 6], {"output_tokens": 6, "seconds": 1.0,
                                                        "tokens": {"p": [0.25] * 6}})
    a, b = column_measures([loop, loop]), column_measures([fresh])
    assert a["length_tokens"] == (6, 0.0) and a["length_chars"] == (4, 0.0)
    assert a["distinct_1"] == pytest.approx(3 / 12) and b["distinct_1"] == 1.0
    assert a["repeated_ngrams"] == pytest.approx(2 / 8) and b["repeated_ngrams"] == 0.0  # 4 trigrams each, 1 repeats
    assert a["cut_share"] == pytest.approx(8 / 16) and b["cut_share"] == 0.0
    assert a["logprob"] == pytest.approx(math.log(0.5)) and a["tokens_per_s"] == 3.0
    best = best_columns([a, b])
    assert best["distinct_1"] == [1] and best["repeated_ngrams"] == [1] and best["cut_share"] == [1]
    assert best["logprob"] == [0] and best["tokens_per_s"] == [1]
    assert "length_tokens" not in best  # longer is not better: nothing is marked
    no_p = column_measures([SampleFacts("가", [1], {"output_tokens": 1, "seconds": 1.0})])
    assert no_p["logprob"] is None and formatted("logprob", no_p["logprob"]) == "—"
    assert formatted("length_tokens", (6, 0.5)) == "6.0 ± 0.5"
