"""Which trained student ships (compression/choose.py): the best on validation within the size budget."""

import pytest

from compression.choose import Candidate, choose

VARIANTS = {"bert/cross": Candidate(755_188, 0.60), "bert/kd": Candidate(755_188, 0.58),
            "bilstm/xtremedistil": Candidate(473_708, 0.55)}


def test_best_is_the_best_validation_among_those_that_fit():
    name, why = choose(VARIANTS, "bert/cross", "best", 500_000, "hr@10")
    assert name == "bilstm/xtremedistil" and why["fits_budget"]
    assert why["candidates"]["bert/cross"] == {"artifact_bytes": 755_188, "valid_hr@10": 0.60, "fits": False}
    # With room for all, validation decides, not size.
    assert choose(VARIANTS, "bilstm/xtremedistil", "best", 1_000_000, "hr@10")[0] == "bert/cross"


def test_a_tie_on_validation_ships_the_smaller_and_then_the_configured():
    tied = {"a": Candidate(900, 0.5), "b": Candidate(800, 0.5), "c": Candidate(800, 0.5)}
    assert choose(tied, "a", "best", 1_000, "accuracy")[0] == "b"
    assert choose({"c": tied["c"], "b": tied["b"]}, "c", "best", 1_000, "accuracy")[0] == "c"


def test_none_fits_ships_the_smallest_and_says_so():
    name, why = choose(VARIANTS, "bert/cross", "best", 100_000, "hr@10")
    assert name == "bilstm/xtremedistil"
    assert not why["fits_budget"] and "no variant fits 100,000 bytes" in why["reason"]


def test_configured_ignores_the_budget():
    name, why = choose(VARIANTS, "bert/kd", "configured", 500_000, "hr@10")
    assert name == "bert/kd" and not why["fits_budget"]


def test_the_configured_variant_must_be_among_the_candidates():
    with pytest.raises(ValueError, match="was not trained"):
        choose(VARIANTS, "bilstm/kd", "best", 500_000, "hr@10")
