"""The offline support check on a hand-labelled set of answers: are hallucinated claims rejected and
supported paraphrases accepted?

evals/data/hallucination_set.jsonl: one answer sentence per line with the source it cites (sample corpus
and ClapNQ passages), labelled "supported" or "hallucinated" and tagged by kind (invented command, flag,
path, setting, number, name, added or dropped negation; copies and paraphrases). Items of split "dev" were
written while the grounding rules were built; items of split "holdout" were written after the rules were
frozen and never used to change them.

A claim is accepted when its support (tools/faithfulness.score_answer, what verify uses offline) is at
least the threshold (Context.faithfulness_threshold, 0.5). "similarity+coverage" is the score before the
grounding rules (0.5 * MiniLM cosine + 0.5 * content-word coverage); "grounded" adds them.

With --clapnq the offline graph also answers the ClapNQ dev questions twice in this process, with and
without the grounding rules (response cache off), so the comparison holds everything else fixed.

Run: .venv/bin/python -m ragroute.evals.benchmarks.support_check [--clapnq]
(writes evals/results/support_check.{json,md}).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ragroute.context import Context
from ragroute.evals.benchmarks import graph_dev
from ragroute.evals.report import environment_info
from ragroute.runtime import providers
from ragroute.tools import faithfulness
from ragroute.tools.faithfulness import score_answer

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "evals" / "data" / "hallucination_set.jsonl"
RESULTS = ROOT / "evals" / "results"
THRESHOLD = Context().faithfulness_threshold


def load_set(path: Path = DATA) -> list[dict[str, Any]]:
    """The labelled items: id, question, source_title, source, answer, label, kind, split."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        if row["label"] not in ("supported", "hallucinated"):
            raise ValueError(f"{row['id']}: label {row['label']!r}; options: supported, hallucinated")
        row.setdefault("split", "dev")
    return rows


def as_source(row: dict[str, Any]) -> dict[str, Any]:
    """The item's cited passage as the graph's source [1]."""
    return {"n": 1, "doc_id": row["id"], "title": row["source_title"], "text": row["source"]}


def score_offline(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each item's support with and without the grounding rules."""
    embed = providers.embedder()
    out = []
    for row in rows:
        parts = score_answer(f"{row['answer']} [1]", [as_source(row)], embed)
        out.append(
            {
                "id": row["id"],
                "label": row["label"],
                "kind": row["kind"],
                "split": row["split"],
                "answer": row["answer"],
                "similarity_coverage": round(
                    min(0.5 * max(p.similarity, 0.0) + 0.5 * p.coverage for p in parts), 4
                ),
                "grounded": round(min(p.support for p in parts), 4),
                "ungrounded": sorted({t for p in parts for t in p.ungrounded}),
            }
        )
    return out


def rates(scored: list[dict[str, Any]], key: str, threshold: float = THRESHOLD) -> dict[str, Any]:
    """Share of hallucinated items rejected and of supported items accepted under score `key`."""
    bad = [s for s in scored if s["label"] == "hallucinated"]
    good = [s for s in scored if s["label"] == "supported"]
    rejected = sum(1 for s in bad if s[key] is not None and s[key] < threshold)
    accepted = sum(1 for s in good if s[key] is not None and s[key] >= threshold)
    return {
        "hallucinated": len(bad),
        "hallucinated_rejected": rejected,
        "rejection_rate": round(rejected / len(bad), 4) if bad else None,
        "supported": len(good),
        "supported_accepted": accepted,
        "acceptance_rate": round(accepted / len(good), 4) if good else None,
    }


def summarise(scored: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Rates per score, overall and per split, plus per-kind counts and the misclassified items."""
    splits = sorted({s["split"] for s in scored})
    kinds = sorted({s["kind"] for s in scored})
    return {
        "overall": {k: rates(scored, k) for k in keys},
        "by_split": {
            sp: {k: rates([s for s in scored if s["split"] == sp], k) for k in keys} for sp in splits
        },
        "by_kind": {
            kind: {
                "label": next(s["label"] for s in scored if s["kind"] == kind),
                "items": sum(1 for s in scored if s["kind"] == kind),
                **{
                    f"correct_{k}": sum(
                        1
                        for s in scored
                        if s["kind"] == kind
                        and s[k] is not None
                        and (s[k] >= THRESHOLD) == (s["label"] == "supported")
                    )
                    for k in keys
                },
            }
            for kind in kinds
        },
        "misclassified": {
            k: [
                {"id": s["id"], "label": s["label"], "kind": s["kind"], "score": s[k], "answer": s["answer"]}
                for s in scored
                if s[k] is not None and (s[k] >= THRESHOLD) != (s["label"] == "supported")
            ]
            for k in keys
        },
    }


CLAPNQ_KEYS = (
    "answered_with_gold_citation",
    "abstain_accuracy",
    "answer_rate",
    "answer_f1",
    "answer_recall",
    "faithfulness",
    "citation_precision",
    "citation_accuracy",
)


def clapnq_with_and_without() -> dict[str, Any]:
    """The offline graph's ClapNQ dev numbers with the grounding rules and with them switched off."""
    os.environ["RAGROUTE_CACHE"] = "0"  # the second run must answer, not replay the first
    runs: dict[str, Any] = {}
    rule = faithfulness.ungrounded
    for name in ("grounded", "without grounding"):
        if name != "grounded":
            faithfulness.ungrounded = lambda *args, **kwargs: []  # type: ignore[assignment]
        try:
            result = graph_dev.clapnq(None, False)
        finally:
            faithfulness.ungrounded = rule
        runs[name] = {k: result["summary"].get(k) for k in CLAPNQ_KEYS} | {
            "queries": result["dataset"]["questions"]
        }
    return runs


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def rates_table(summary: dict[str, Any], names: dict[str, str]) -> list[str]:
    """Markdown rows: score, split, rejected hallucinated, accepted supported."""
    lines = [
        "| score | items | hallucinated rejected | supported accepted |",
        "|---|---|---|---|",
    ]
    groups = [("all", summary["overall"]), *summary["by_split"].items()]
    for key, name in names.items():
        for split, by_key in groups:
            r = by_key[key]
            lines.append(
                f"| {name} | {split} | {r['hallucinated_rejected']}/{r['hallucinated']} "
                f"({_pct(r['rejection_rate'])}) | {r['supported_accepted']}/{r['supported']} "
                f"({_pct(r['acceptance_rate'])}) |"
            )
    return lines


def _row(key: str, runs: dict[str, Any]) -> str:
    return f"| {key} | " + " | ".join(f"{r.get(key) or 0:.3f}" for r in runs.values()) + " |"


def to_markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown report."""
    env = result["environment"]
    names = {"similarity_coverage": "similarity+coverage (before)", "grounded": "grounded (verify offline)"}
    lines = [
        "# Offline support check on hand-labelled answers",
        "",
        f"{result['items']} answer sentences over sample-corpus and ClapNQ passages "
        f"(`evals/data/hallucination_set.jsonl`), threshold {result['threshold']}; {env['cpu_count']} shared "
        f"CPU cores, {env['timestamp']}, {result['seconds']:.1f} s in all. "
        "Produced by `python -m ragroute.evals.benchmarks.support_check`.",
        "",
        *rates_table(result["summary"], names),
        "",
        "| kind | label | items | correct before | correct grounded |",
        "|---|---|---|---|---|",
    ]
    for kind, k in result["summary"]["by_kind"].items():
        lines.append(
            f"| {kind} | {k['label']} | {k['items']} | {k['correct_similarity_coverage']} | "
            f"{k['correct_grounded']} |"
        )
    lines += ["", "Misclassified with the grounding rules:", ""]
    missed = result["summary"]["misclassified"]["grounded"]
    lines += [f"- {m['id']} ({m['label']}, {m['kind']}, {m['score']}): {m['answer']}" for m in missed] or [
        "- none"
    ]
    if result.get("clapnq_graph"):
        runs = result["clapnq_graph"]
        lines += [
            "",
            f"## ClapNQ dev through the offline graph ({next(iter(runs.values()))['queries']} questions)",
            "",
            "| metric | " + " | ".join(runs) + " |",
            "|---|" + "---|" * len(runs),
            *[_row(k, runs) for k in CLAPNQ_KEYS],
        ]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


NOTES = [
    "The set is small and hand-written by the same person who wrote the rules: 'dev' items were seen while "
    "building them, so read the 'holdout' rows as the honest estimate.",
    "The grounding rules catch what is checkable by string: commands, flags, paths, settings, numbers, "
    "names and the polarity of the closest source sentence. A claim that inverts the meaning with the "
    "source's own words (e.g. 'the cell is merely resting' against 'does not describe a cell that is "
    "merely resting') still passes when the negated verb is not repeated.",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Score the labelled set and write evals/results/support_check.{json,md}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--clapnq", action="store_true", help="ClapNQ dev with and without the rules")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = load_set(Path(args.data))
    start = time.perf_counter()
    scored = score_offline(rows)
    result = {
        "items": len(rows),
        "threshold": THRESHOLD,
        "seconds": round(time.perf_counter() - start, 2),
        "summary": summarise(scored, ("similarity_coverage", "grounded")),
        "scored": scored,
        "environment": environment_info(),
        "notes": NOTES,
    }
    if args.clapnq:
        result["clapnq_graph"] = clapnq_with_and_without()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "support_check.json").write_text(json.dumps(result, indent=2))
    (out / "support_check.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
