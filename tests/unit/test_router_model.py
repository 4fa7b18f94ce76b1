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
    assert 0.0 <= model.thresholds["multihop"] <= 1.0 and 0.0 <= model.thresholds["expand"] <= 1.0


def test_probabilities_sum_to_one_and_inference_is_deterministic():
    model = load_router()
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(20, len(model.mean))) * model.scale + model.mean
    probs = model.probabilities(rows)
    assert probs.shape == (20, 3) and np.allclose(probs.sum(axis=1), 1.0) and (probs >= 0).all()
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
    assert np.allclose(again.coef, model.coef, rtol=1e-5) and again.thresholds == model.thresholds
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
