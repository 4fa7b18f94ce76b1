"""The learned answer-or-abstain model: numpy inference equals scikit-learn's, the shipped file is
consistent with the features the generator computes, and its probability is the answer's confidence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from langgraph.runtime import Runtime
from ragroute.context import Context
from ragroute.nodes.generate import generate
from ragroute.tools.answerability import FEATURES, MODEL_PATH, default_model
from ragroute.tools.learned import LogisticModel, fit

TOWER = {
    "n": 1,
    "chunk_id": "tower::c0",
    "doc_id": "tower",
    "title": "Eiffel Tower",
    "text": (
        "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris. "
        "Construction began in January 1887 and the tower was completed in March 1889 as the entrance to "
        "the World's Fair. Gustave Eiffel's company designed and built the tower."
    ),
    "metadata": {},
}


def test_numpy_inference_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 4)) * [1.0, 5.0, 0.1, 2.0] + [0.0, 3.0, 1.0, -1.0]
    y = (x[:, 0] + 0.3 * x[:, 1] - 8 * x[:, 2] + rng.normal(size=200)) > 0
    ours = fit(x, y, ["a", "b", "c", "d"], c=0.5)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000)).fit(x, y)
    assert np.allclose(ours.probabilities(x), reference.predict_proba(x)[:, 1], atol=1e-6)
    row = dict(zip("abcd", x[7], strict=True))
    assert ours.probability(row) == pytest.approx(reference.predict_proba(x[7:8])[0, 1], abs=1e-6)


def test_a_constant_feature_gets_no_weight_and_the_json_form_round_trips(tmp_path):
    x = np.column_stack([np.arange(20.0), np.ones(20)])
    model = fit(x, np.arange(20) > 9, ["signal", "constant"], threshold=0.3)
    assert model.coef[1] == 0.0 and model.scale[1] == 1.0
    path = tmp_path / "m.json"
    model.save(path, trained_on="test")
    back = LogisticModel.load(path)
    assert back.threshold == 0.3 and np.allclose(back.probabilities(x), model.probabilities(x))
    with pytest.raises(ValueError, match="threshold"):
        LogisticModel(("a",), np.zeros(1), np.ones(1), np.ones(1), 0.0, threshold=1.5)
    with pytest.raises(ValueError, match="1 features"):
        LogisticModel(("a",), np.zeros(2), np.ones(1), np.ones(1), 0.0)


def test_the_shipped_model_reads_the_generators_features_and_sets_the_default_threshold():
    data = json.loads(MODEL_PATH.read_text())
    model = default_model()
    assert set(model.features) <= set(FEATURES) and "trained_on" in data
    assert 0.0 < model.threshold < 1.0
    assert Context().answer_threshold == model.threshold  # one default, chosen by cross-validation


async def test_the_probability_is_the_answers_confidence_and_the_trace_says_why():
    runtime = Runtime(context=Context(stale_after_days=100000))
    out = await generate({"question": "When was the Eiffel Tower completed?", "sources": [TOWER]}, runtime)
    step = out["trace"][0]
    assert not out["abstained"] and 0.5 < out["confidence"] <= 1.0
    assert step["answerability"] == out["confidence"]
    assert set(step["answer_features"]) == set(FEATURES)
    assert out["confidence"] == pytest.approx(default_model().probability(step["answer_features"]), abs=1e-3)
    # a threshold above the probability abstains on the same sources; the probability is still reported
    strict = Runtime(context=Context(stale_after_days=100000, answer_threshold=0.999))
    refused = await generate({"question": "When was the Eiffel Tower completed?", "sources": [TOWER]}, strict)
    assert refused["abstained"] and refused["confidence"] == out["confidence"]
