"""The learned router: the shipped model file, its loading errors, and routes on a real index."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from ragroute.api import ask
from ragroute.context import Context
from ragroute.tools.errors import ConfigError
from ragroute.tools.index import HybridIndex
from ragroute.tools.ingest import ingest_documents
from ragroute.tools.router_model import MODEL_PATH, ROUTES, STRUCTURAL, RouterModel, features, load_router
from ragroute.tools.types import Document

# an invented corpus (no dev-set text): two people, two places, a product manual
DOCS = [
    (
        "marta",
        "Marta Oyelaran",
        "Marta Oyelaran is a Nigerian architect born in 1961 in Ibadan. She designed "
        "the Harbour Library in Lagos and taught at the University of Ibadan.",
    ),
    (
        "harbour",
        "Harbour Library",
        "The Harbour Library is a public library in Lagos, opened in 1999. It was "
        "designed by the architect Marta Oyelaran and holds two million volumes.",
    ),
    (
        "tomas",
        "Tomas Berglund",
        "Tomas Berglund is a Swedish architect born in 1958 in Uppsala, known for "
        "timber concert halls in northern Sweden.",
    ),
    (
        "vell",
        "Vell River",
        "The Vell is a river in central Norway, 212 kilometres long, that flows into the Trondheim fjord.",
    ),
    ("asker", "Asker River", "The Asker is a river in southern Norway, 148 kilometres long."),
    (
        "kettle",
        "Kettle manual",
        "The kettle switches itself off when the water boils. Descale it every month "
        "with white vinegar. The warranty lasts two years.",
    ),
]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("router-index"))
    index = HybridIndex.open(path)
    try:
        docs = [Document(doc_id=i, text=t, title=title, source=f"{i}.txt") for i, title, t in DOCS]
        ingest_documents(index, docs, progress=False, use_sidecar=False)
    finally:
        index.close()
    return path


def test_shipped_model_loads_and_describes_itself():
    model = load_router()
    data = json.loads(MODEL_PATH.read_text())
    assert model.classes == ROUTES and model.structural == STRUCTURAL
    assert model.embedding_model == "minilm" and model.embedding_dim == 384
    assert data["about"]["training_data"]["questions"] > 300  # what it was fitted on is recorded
    assert (
        model.decision == "expected"
        and str(data["about"]["cost_weight"]) in data["about"]["inner_cv_by_weight"]
    )
    # the penalty grows with the route's cost: simple <= expand <= multihop
    assert 0.0 <= model.penalty["simple"] <= model.penalty["expand"] <= model.penalty["multihop"] <= 1.0


def test_per_route_probabilities_and_inference_is_deterministic():
    model = load_router()
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(20, len(model.mean))) * model.scale + model.mean
    probs = model.probabilities(rows)
    assert probs.shape == (20, 3) and (probs >= 0).all() and (probs <= 1).all()  # one P(solves) per route
    assert np.array_equal(probs, model.probabilities(rows))
    f = features("Which is longer, the Vell or the Asker?", [])
    assert model.route(f, None) == model.route(f, None)


def test_a_missing_or_mismatched_embedding_sits_at_the_training_mean():
    model = load_router()
    f = features("How long is the warranty?", [])
    row = model.row(f, None)
    assert np.allclose(row[len(STRUCTURAL) :], model.mean[len(STRUCTURAL) :])
    assert np.allclose(model.row(f, [0.1] * 7), row)  # a vector of another model's size is ignored


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read"),
        ("{not json", "is not a ragroute router model"),
        ('{"format": "ragroute-router/1", "classes": ["a"]}', "is not a ragroute router model"),
        ('{"format": "other"}', "is not a ragroute router model"),
    ],
)
def test_bad_model_file_is_one_line_config_error(tmp_path, content, problem):
    path = tmp_path / "router.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as err:
        Context(router_model=str(path))
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_env_names_the_model_and_a_bad_one_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGROUTE_ROUTER_MODEL", str(MODEL_PATH))
    assert Context().router_model == str(MODEL_PATH)
    monkeypatch.setenv("RAGROUTE_ROUTER_MODEL", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="cannot be read"):
        Context()


def test_cli_ask_with_a_missing_router_model_is_a_one_line_error(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ragroute.cli",
            "--index",
            str(tmp_path),
            "ask",
            "hi",
            "--router-model",
            str(tmp_path / "nope.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    missing = str(tmp_path / "nope.json")
    assert proc.stderr.strip().splitlines() == [
        f"ragroute: error: router_model={missing!r} cannot be read: No such file or directory"
    ]


def test_model_round_trips_through_json(tmp_path):
    model = load_router()
    path = tmp_path / "copy.json"
    model.save(path)
    again = load_router(path)
    assert np.allclose(again.coef, model.coef, rtol=1e-5) and again.penalty == model.penalty
    assert again.decision == model.decision
    assert isinstance(again, RouterModel)


@pytest.mark.parametrize(
    ("question", "routes"),
    [
        # a comparison of two named items: the shipped model widens retrieval (expand), not always multihop
        ("Which river is longer, the Vell or the Asker?", {"expand", "multihop"}),
        ("Were Marta Oyelaran and Tomas Berglund born in the same decade?", {"multihop"}),
        ("In which city was the architect of the Harbour Library born?", {"multihop"}),
        ("how long is the kettle warranty", {"simple"}),
        ("when does the kettle switch off", {"simple"}),
    ],
)
def test_routes_on_a_real_index(index_dir, question, routes):
    out = ask(question, index_dir=index_dir, all_access=True, cache=False)
    assert out["route"] in routes


def _question(dataset: str, i: int, solved: dict[str, float], label: str):
    from ragroute.evals.router_training import Question

    return Question(
        dataset=dataset,
        qid=f"{dataset}{i}",
        text=f"invented question {dataset} {i}",
        feats={"log_words": float(ROUTES.index(label)) + 0.01 * i},
        vector=[float(i % 3), 1.0],
        solved=solved,
        latency_ms={"simple": 100.0, "expand": 300.0, "multihop": 600.0},
        label=label,
        extra={"has_gold": True},
    )


def test_cost_weight_is_the_largest_within_tolerance_of_the_best_forced_route():
    from ragroute.evals.router_training import Setting, choose_weight

    # forced multihop solves all 10, forced simple 9 of them
    rows = [
        _question("a", i, {"simple": float(i > 0), "expand": 1.0, "multihop": 1.0}, "simple")
        for i in range(10)
    ]

    def at(share: float) -> Setting:
        return Setting(0.1, {"multihop": 0.5, "expand": 0.5}, share, 0.5, {"a": share})

    by_weight = {0.0: at(1.0), 0.05: at(0.99), 0.1: at(0.98), 0.2: at(0.9)}
    assert choose_weight(rows, by_weight, tolerance=0.015) == 0.05
    assert choose_weight(rows, by_weight, tolerance=0.1) == 0.2
    assert (
        choose_weight(rows, {0.1: at(0.5), 0.2: at(0.4)}, tolerance=0.015) == 0.1
    )  # none fits: the smallest


def test_expected_decision_takes_the_best_probability_minus_penalty_ties_to_the_cheaper():
    model = load_router()
    pen = {"simple": 0.05, "expand": 0.1, "multihop": 0.2}
    m = RouterModel(**{**model.__dict__, "penalty": pen})
    assert m.decide([0.5, 0.5, 0.9]) == "multihop"  # 0.7 beats 0.45 and 0.4
    assert m.decide([0.9, 0.95, 1.0]) == "simple"  # 0.85 vs 0.85 vs 0.8: the tie goes to the cheaper
    assert m.decide([0.2, 0.6, 0.7]) == "expand"
    with pytest.raises(ValueError, match="penalty"):
        RouterModel(**{**model.__dict__, "penalty": {"simple": 0.1}})


def test_fit_router_records_the_weight_it_chose_and_routes_by_it():
    from ragroute.evals.router_training import WEIGHT_GRID, cross_validate, fit_router

    rows = []
    for i in range(30):  # multihop alone solves the "m" questions; every route solves the "s" ones
        rows.append(_question("d", i, {"simple": 0.0, "expand": 0.0, "multihop": 1.0}, "multihop"))
        rows.append(_question("d", 100 + i, {"simple": 1.0, "expand": 1.0, "multihop": 1.0}, "simple"))
    model = fit_router(rows, embedding_model=None, use_embedding=False, structural=("log_words",))
    assert model.about["cost_weight"] in WEIGHT_GRID
    assert set(model.about["inner_cv_by_weight"]) == {str(w) for w in WEIGHT_GRID}
    oof = cross_validate(rows, folds=3, use_embedding=False, structural=("log_words",))
    assert all(o["route"] == o["by_weight"][o["weight"]] for o in oof)
    # the chosen weight keeps what every question needs: nothing is lost out of fold
    assert all(r.solved[o["route"]] == 1.0 for r, o in zip(rows, oof, strict=True))
