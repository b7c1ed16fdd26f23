"""The classifier's yardstick: the centralized head picks its check on validation only; the baselines by hand."""

import numpy as np
import pytest

from edgefleet.tasks.base import CentralSettings
from edgefleet.tasks.textclf.central import majority, naive_bayes, train_head
from edgefleet.tasks.textclf.evaluate import ClassifierEvaluator


def _head(classes: int, dim: int) -> dict:
    return {"classifier.weight": np.zeros((classes, dim), np.float32), "classifier.bias": np.zeros(classes, np.float32)}


def test_the_central_head_learns_and_keeps_its_best_check_on_validation():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 3
    y = rng.integers(0, 3, 300)
    x = (centers[y] + rng.normal(size=(300, 8))).astype(np.float32)
    vy = rng.integers(0, 3, 90)
    vx = (centers[vy] + rng.normal(size=(90, 8))).astype(np.float32)

    def validate(p):
        return float(np.mean(np.argmax(vx @ p["classifier.weight"].T + p["classifier.bias"], 1) == vy))

    seen = []

    def counting(p):
        seen.append(1)
        return validate(p)

    trained, rows = train_head(_head(3, 8), x, y, counting, CentralSettings(3, 32, 0, 0.05, 0, checks=2))
    assert [r["epoch"] for r in rows] == [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0] and len(seen) == 7
    assert validate(trained) == max(r["valid"] for r in rows) > rows[0]["valid"] + 0.3

    # A validation score no check beats keeps the deployed head.
    shared = _head(3, 8)
    kept, _ = train_head(shared, x, y, lambda p: 1.0 if p["classifier.bias"].sum() == 0 and
                         not p["classifier.weight"].any() else 0.0, CentralSettings(1, 32, 0, 0.05, 0))
    assert not kept["classifier.weight"].any()


def test_majority_and_naive_bayes_by_hand():
    train = ["good fun film", "great fun", "bad dull film", "dull boring"]
    y = np.array([0, 0, 1, 1])
    test, ty = ["fun", "boring film", "unknown words only"], np.array([0, 1, 0])
    nb = naive_bayes(train, y, test, ty, 2)
    # "fun" only in class 0; "boring" only in class 1, "film" in both; no known word: the prior (a tie -> class 0)
    assert nb["accuracy"] == 1.0 and nb["macro_f1"] == 1.0
    assert majority(np.array([1, 1, 0]), ty, 2) == pytest.approx({"accuracy": 1 / 3, "macro_f1": 0.25})


def test_the_evaluator_scores_a_head_as_the_oracle_is_scored():
    class Encoder:
        def encode(self, text):
            return np.array([len(text), 1.0], np.float32)

    ev = ClassifierEvaluator(Encoder(), ["a", "bbbb"], np.array([0, 1]), 2)
    head = {"classifier.weight": np.array([[-1.0, 2.5], [1.0, 0.0]], np.float32),
            "classifier.bias": np.zeros(2, np.float32)}
    assert ev(head)["accuracy"] == 1.0
    assert ev.per_row(head, "accuracy").tolist() == [1.0, 1.0]
    head["classifier.bias"] = np.array([0.0, 20.0], np.float32)  # now "a" is called class 1 too
    assert ev.per_row(head, "accuracy").tolist() == [0.0, 1.0] and ev(head)["accuracy"] == 0.5
    with pytest.raises(ValueError, match="not a mean over test rows"):
        ev.per_row(head, "macro_f1")
