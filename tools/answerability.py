"""The extractive generator's answer-or-abstain model: P(the sources answer the question).

A standardised logistic regression (tools/learned.py) over tools/extractive.answer_features, trained on
ClapNQ dev questions labelled answerable / unanswerable by evals/benchmarks/answerability_cv.py and
shipped as tools/models/answerability.json. Its probability is the answer's confidence; the threshold
stored with it was chosen inside cross-validation (Context.answer_threshold overrides it per run).
"""

from __future__ import annotations

import functools
from pathlib import Path

from ragroute.tools.learned import LogisticModel

MODEL_PATH = Path(__file__).resolve().parent / "models" / "answerability.json"
# what tools/extractive.answer_features computes; the model file names the ones it was fitted on
FEATURES = (
    "best_score",  # 0.6 cosine + 0.4 term overlap of the best sentence read with its title
    "best_similarity",
    "best_overlap",
    "score_gap",  # best minus second-best candidate score
    "bare_score",  # the same blend without the title, best of the top candidates (the old rule's score)
    "bare_similarity",
    "specific_overlap",  # share of the question's non-title terms the sentence holds
    "specific_terms",
    "question_terms",
    "asks_quantity",  # "how many/much/long ..."
    "has_candidate",  # some top candidate can hold the answer (a number for "how many")
    "bare_score_top3",  # mean bare_score of the best three candidates
    "novel_terms",  # most content words a candidate adds to the question's
    "answer_type_missing",  # asks "when"/"who" and no candidate holds a date / a new name
)


@functools.cache
def default_model() -> LogisticModel:
    """The shipped model (tools/models/answerability.json), read once."""
    return LogisticModel.load(MODEL_PATH)
