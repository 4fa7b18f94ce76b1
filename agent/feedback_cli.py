"""`ragroute feedback export|list`: the ratings callers gave answers, as a golden set `ragroute eval` reads.

A rated answer becomes one golden record: a correction is the gold (the correct answer as the expected
answer, the correct source as the expected source); a thumbs-up without one makes the given answer and
its cited documents the gold, or, for an abstention, records the question as unanswerable. A thumbs-down
without a correction says what is wrong but not what is right, so it is left out (and counted).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragroute.evals.datasets import GOLDEN_FIELDS
from ragroute.tools.errors import InputError

if TYPE_CHECKING:
    from ragroute.runtime.feedback import FeedbackStore


def golden_record(rated: dict[str, Any]) -> dict[str, Any] | None:
    """The golden-set record of one rated answer, or None when the rating names no gold."""
    up = rated["rating"] == "up"
    cited = list(dict.fromkeys(c["doc_id"] for c in rated["citations"] if c.get("doc_id")))
    expected_answer = rated.get("correct_answer")
    expected_sources = [rated["correct_source"]] if rated.get("correct_source") else []
    answerable = True
    if up and not expected_answer and not expected_sources:
        if rated["abstained"]:
            answerable = False  # "I don't know" was right
        else:
            expected_answer, expected_sources = rated["answer"], cited
    if answerable and not expected_answer and not expected_sources:
        return None
    record: dict[str, Any] = {
        "id": rated["answer_id"],
        "question": rated["question"],
        "answerable": answerable,
        "metadata": {
            "source": "feedback",
            "rating": rated["rating"],
            "route": rated.get("route"),
            "given_answer": rated["answer"],
            "given_sources": cited,
            "comment": rated.get("comment"),
            "rated_at": rated.get("rated_at"),
        },
    }
    if expected_answer:
        record["expected_answer"] = expected_answer
    if expected_sources:
        record["expected_sources"] = expected_sources
    return {k: v for k, v in record.items() if k in GOLDEN_FIELDS}  # what evals.load_golden reads


def golden_set(rated: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """(golden records, how many ratings named no gold and were left out)."""
    records, skipped = [], 0
    for one in rated:
        record = golden_record(one)
        if record is None:
            skipped += 1
        else:
            records.append(record)
    return records, skipped


def _store(args: argparse.Namespace) -> FeedbackStore:
    # imported when a command runs: `ragroute --help` and other commands stay free of numpy
    from ragroute.runtime.feedback import FeedbackStore
    from ragroute.tools.index.config import local_folder
    from ragroute.tools.location import default_location

    folder = local_folder(args.index or default_location())  # Milvus: its state folder
    if not os.path.isdir(folder):
        raise InputError(f"index folder {folder!r} does not exist")
    return FeedbackStore(folder)


def cmd_export(args: argparse.Namespace) -> int:
    """Write the golden set (JSONL) to --out or stdout; say on stderr what was written and left out."""
    records, skipped = golden_set(_store(args).rated(args.only))
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if args.out:
        Path(args.out).write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)
    where = args.out or "stdout"
    note = f"; {skipped} thumbs-down without a correction left out" if skipped else ""
    print(f"feedback: {len(records)} golden record(s) to {where}{note}", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print the rated answers (newest last): id, rating, route, question, correction."""
    rated = _store(args).rated(args.only)
    if args.json:
        print(json.dumps(rated, indent=2, ensure_ascii=False))
        return 0
    for r in rated:
        fix = r.get("correct_source") or r.get("correct_answer") or ""
        route = r.get("route") or "-"
        print(f"{r['answer_id'][:12]}  {r['rating']:<4}  {route:<8}  {r['question'][:60]!r}  {fix}")
    print(f"{len(rated)} rated answer(s)", file=sys.stderr)
    return 0


def register_feedback(sub: Any) -> argparse.ArgumentParser:
    """Add `feedback export` and `feedback list` to the CLI's subparsers."""
    help_ = "export or list the ratings of answers (<index>/feedback.sqlite) as a golden set"
    parser = sub.add_parser("feedback", help=help_, description=help_)
    actions = parser.add_subparsers(dest="feedback_command", required=True)
    for name, func, what in (
        ("export", cmd_export, "write rated answers as golden-set JSONL (`ragroute eval FILE` reads it)"),
        ("list", cmd_list, "list rated answers"),
    ):
        p = actions.add_parser(name, help=what, description=what)
        p.add_argument("--index", default=argparse.SUPPRESS, help="index folder (same as before the command)")
        p.add_argument(
            "--only", choices=("bad", "good", "all"), default="all", help="which ratings (default all)"
        )
        p.set_defaults(func=func)
        if name == "export":
            p.add_argument("--out", help="JSONL file to write (default: stdout)")
        else:
            p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    return parser
