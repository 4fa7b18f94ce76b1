"""`ragroute train-router DATA...`: fit the learned router on your own labelled questions.

DATA are BEIR folders (corpus.jsonl, queries.jsonl, qrels/*.tsv: the corpus is indexed into an eval
index) or golden-set JSONL files (what `ragroute eval` and `ragroute feedback export` read: judged against
the index given by --index). Every route is run on each question (outcomes cached beside the model file,
so a rerun only runs what is new), each question is labelled with the cheapest route whose final
context held its gold passages, and the model is fitted and written to --out. Use it with
`ragroute ask --router-model PATH`, `Context(router_model=PATH)` or RAGROUTE_ROUTER_MODEL=PATH.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from ragroute.tools.errors import InputError
from ragroute.tools.location import default_location


def register_router(sub: Any) -> argparse.ArgumentParser:
    """Add the `train-router` subcommand to the CLI's subparsers."""
    p = sub.add_parser("train-router", help="fit the learned router on your own data", description=__doc__)
    p.add_argument("data", nargs="+", help="BEIR folders or golden .jsonl files (short names work too)")
    p.add_argument("--out", default="router.json", help="model file to write (default %(default)s)")
    p.add_argument("--index", default=argparse.SUPPRESS, help="index that golden sets are judged against")
    p.add_argument("--sample", type=int, help="at most this many questions per dataset (random, fixed seed)")
    p.add_argument("--cv", type=int, default=0, metavar="K", help="also report K-fold route accuracy")
    p.add_argument("--cost-weight", type=float, default=None, help="latency penalty in the threshold choice")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train_router)
    return p


def cmd_train_router(args: argparse.Namespace) -> int:
    """Label, fit and write a router model."""
    if args.sample is not None and args.sample < 1:
        raise InputError(f"--sample must be a positive integer, got {args.sample}")
    if args.cv == 1 or args.cv < 0:
        raise InputError(f"--cv must be 0 (off) or at least 2, got {args.cv}")
    out = Path(args.out).expanduser()
    if out.is_dir() or not out.parent.is_dir():
        raise InputError(f"--out {str(out)!r} must be a file path in an existing folder")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ragroute.evals import router_training as T  # scikit-learn, the graph: loaded on use
    from ragroute.evals.benchmarks import router_silver as silver
    from ragroute.evals.datasets import load_dataset

    progress = not (args.no_progress or args.json)
    index_dir = getattr(args, "index", None) or default_location()
    datasets = [load_dataset(spec) for spec in args.data]  # every argument checked before any work
    rows: list[Any] = []
    embedders = set()
    for ds in datasets:
        if ds.kind == "golden" and not index_dir:
            index_dir = str(Path.home() / ".ragroute" / "index")
        index = silver.open_dataset_index(ds, index_dir, progress=progress)
        try:
            embedders.add(T.embedding_name(index))
            queries = silver.sample_queries(ds, args.sample)
            rows += T.labelled_questions(
                ds, queries, index, cache=out.with_suffix(".silver.jsonl"), progress=progress
            )
        finally:
            if ds.kind == "beir":
                index.close()
    if len(embedders) != 1:
        raise InputError(f"the datasets were indexed with different embedders {sorted(map(str, embedders))}")
    kw: dict[str, Any] = {} if args.cost_weight is None else {"weight": args.cost_weight}
    labels = dict(Counter(r.label for r in rows))
    about: dict[str, Any] = {
        "training_data": {"data": [str(d.path) for d in datasets], "questions": len(rows)}
    }
    about["training_data"]["labels"] = labels
    if args.cv:
        oof = T.cross_validate(rows, folds=args.cv, **kw)
        about["training_data"]["cv_route_accuracy"] = round(
            sum(r.label == o["route"] for r, o in zip(rows, oof, strict=True)) / len(rows), 4
        )
    model = T.fit_router(rows, embedding_model=embedders.pop(), about=about, **kw)
    model.save(out)
    report = {
        "model": str(out),
        "questions": len(rows),
        "labels": labels,
        "thresholds": model.thresholds,
        "penalty": model.penalty,
        "cost_weight": model.about.get("cost_weight"),
    }
    if args.cv:
        report["cv_route_accuracy"] = about["training_data"]["cv_route_accuracy"]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        rule = f"route penalties {model.penalty}" if model.penalty else f"thresholds {model.thresholds}"
        print(f"wrote {out}: {len(rows)} questions, silver labels {labels}, {rule}")
        if args.cv:
            print(
                f"{args.cv}-fold route accuracy against the silver labels: {report['cv_route_accuracy']:.3f}"
            )
        print(f"use it: ragroute ask --router-model {out} QUESTION  (or RAGROUTE_ROUTER_MODEL={out})")
    return 0
