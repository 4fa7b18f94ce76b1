"""The `ragroute` CLI: ingest, search, ask, delete, restore, purge, stats, quickstart, eval, serve.

Command handlers import the index, the ingestion pipeline and the graph when they run, so that
`ragroute --help` and argument errors answer without loading numpy, Chroma or LangGraph; the embedding
model (torch) loads only in the commands that embed (ingest, search, ask, quickstart).

Access scope: `search` and `ask` read public documents only unless given --groups/--clearance or
--all-access; they name the scope they used on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ragroute.context import Context, check_llm_provider
from ragroute.evals.cli import register as register_eval
from ragroute.feedback_cli import register_feedback
from ragroute.mcp_server.serve import register as register_mcp
from ragroute.router_cli import register_router
from ragroute.runtime.scope import access_of, describe_scope
from ragroute.server.serve import register as register_serve
from ragroute.tools.errors import InputError, RagrouteError
from ragroute.tools.filters import parse_filter
from ragroute.tools.loaders import sample_corpus_dir
from ragroute.tools.location import default_location
from ragroute.tools.metadata import parse_meta_args

QUICKSTART_QUESTION = "What is the maximum lifetime of an API token?"


def index_dir(args: argparse.Namespace) -> str:
    """The index: --index, else RAGROUTE_INDEX or RAGROUTE_INDEX_DIR, else ~/.ragroute/index (a folder, or a
    Milvus URL: milvus://HOST:PORT/NAME or milvus:///FILE.db)."""
    return str(args.index or default_location())


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _parse_filter(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"--filter is not valid JSON ({exc.msg} at char {exc.pos}): {raw!r}") from None
    if not isinstance(value, dict):
        raise InputError(f"--filter must be a JSON object, got {raw!r}")
    parse_filter(value)  # operators and operands checked now, before any index or model is loaded
    return value


def _parse_groups(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    return [g.strip() for g in raw.split(",") if g.strip()]


def _scope_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The caller's access scope as Context fields (none given: public documents only)."""
    fields: dict[str, Any] = {}
    groups = _parse_groups(getattr(args, "groups", None))
    if groups is not None:
        fields["user_groups"] = groups
    if getattr(args, "clearance", None) is not None:
        fields["clearance"] = args.clearance
    if getattr(args, "all_access", False):
        if fields:
            raise InputError("--all-access reads every document; drop --groups/--clearance")
        fields["all_access"] = True
    return fields


def _say_scope(ctx: Context) -> None:
    print(f"scope: {describe_scope(ctx)}", file=sys.stderr)


def _open_index(args: argparse.Namespace, *, lazy_vectors: bool = False) -> Any:
    """The index; `lazy_vectors` for admin commands that may never read a vector (Chroma opens on use)."""
    from ragroute.tools.index import HybridIndex  # heavy (numpy, the vector store): see the module doc

    return HybridIndex.open(index_dir(args), lazy_vectors=lazy_vectors)


# ---------------------------------------------------------------- commands


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest files or folders into the index."""
    from ragroute.tools.ingest import ingest_paths  # loaded on use: see the module doc

    meta = parse_meta_args(args.meta or [])
    for path in args.paths:
        if not Path(path).exists():
            raise InputError(f"no such file or folder: {path}")
    index = _open_index(args)
    try:
        report = ingest_paths(
            index,
            args.paths,
            meta=meta,
            progress=not args.json and not args.no_progress,
            prune=args.prune,
            replace_source=args.replace,
            redact_pii=args.redact_pii,
        )
    finally:
        index.close()
    data = report.to_dict()
    if args.json:
        _print_json(data)
    else:
        print(
            f"added {len(report.added)}, updated {len(report.updated)}, unchanged {len(report.unchanged)}, "
            f"deleted {len(report.deleted)}, failed {len(report.failed)}; "
            f"{report.chunks_written} chunks written in {report.seconds:.1f}s"
        )
        for source, message in report.failed:
            print(f"  failed: {source}: {message}", file=sys.stderr)
        if report.pii is not None:
            found = ", ".join(f"{k} {v}" for k, v in sorted(report.pii.items())) or "none found"
            how = (
                "mapping stored encrypted in <index>/pii"
                if report.pii_reversible
                else "irreversible (set RAGROUTE_PII_KEY to keep an encrypted mapping)"
            )
            print(f"PII redacted: {found}; {how}")
    if report.failed:
        print(f"ragroute: error: {len(report.failed)} file(s) failed to ingest", file=sys.stderr)
        return 1
    return 0


def _where(title: str | None, section: str | None) -> str:
    """ "Title > Section", without repeating a title that is also the section's first heading."""
    title, section = title or "", section or ""
    if section.startswith(title):
        return section or title
    return " > ".join(p for p in (title, section) if p)


def _print_hits(hits: Sequence[Any]) -> None:
    if not hits:
        print("no results")
    for i, hit in enumerate(hits, 1):
        ranks = ", ".join(f"{k}#{v}" if v else f"{k}:-" for k, v in hit.ranks.items())
        where = _where(hit.title, hit.section)
        text = " ".join(hit.text.split())
        print(f"[{i}] {hit.score:.4f} ({ranks}) {hit.doc_id} | {where}")
        print(f"    {text[:240]}{'...' if len(text) > 240 else ''}")


def cmd_search(args: argparse.Namespace) -> int:
    """Hybrid search: ranked passages with fused scores and per-source ranks."""
    if args.k < 1 or args.k > 1000:
        raise InputError(f"-k must be between 1 and 1000, got {args.k}")
    if not args.query.strip():
        raise InputError("query must be a non-empty string")
    filters = _parse_filter(args.filter)
    ctx = Context.from_dict(_scope_fields(args))
    index = _open_index(args)
    try:
        hits = index.search(args.query, k=args.k, filters=filters, access=access_of(ctx))
    finally:
        index.close()
    if args.json:
        _print_json({"query": args.query, "results": [h.to_dict() for h in hits]})
    else:
        _print_hits(hits)
    _say_scope(ctx)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete documents by id from every search path (soft: restorable until purged; --hard: gone)."""
    index = _open_index(args, lazy_vectors=True)
    try:
        results = {doc_id: index.delete_document(doc_id, soft=not args.hard) for doc_id in args.doc_ids}
    finally:
        index.close()
    if args.json:
        deleted = [d for d, ok in results.items() if ok]
        _print_json({"deleted": deleted, "not_found": [d for d in results if d not in deleted]})
    else:
        how = "deleted" if args.hard else "soft-deleted (ragroute restore ID, until ragroute purge)"
        for doc_id, ok in results.items():
            print(f"{how if ok else 'not found'}: {doc_id}")
    return 0 if all(results.values()) else 1


def cmd_restore(args: argparse.Namespace) -> int:
    """Bring soft-deleted documents back."""
    index = _open_index(args, lazy_vectors=True)
    try:
        results = {doc_id: index.restore_document(doc_id) for doc_id in args.doc_ids}
    finally:
        index.close()
    restored = [d for d, ok in results.items() if ok]
    if args.json:
        _print_json({"restored": restored, "not_found": [d for d in results if d not in restored]})
    else:
        for doc_id, ok in results.items():
            print(f"{'restored' if ok else 'not in the trash'}: {doc_id}")
    return 0 if all(results.values()) else 1


def cmd_purge(args: argparse.Namespace) -> int:
    """Hard-delete soft-deleted documents older than the grace period."""
    if args.older_than < 0:
        raise InputError(f"--older-than must be >= 0 days, got {args.older_than}")
    index = _open_index(args, lazy_vectors=True)
    try:
        purged = index.purge_deleted(args.older_than)
        left = len(index.deleted_documents())
    finally:
        index.close()
    if args.json:
        _print_json({"purged": purged, "still_soft_deleted": left})
    else:
        print(f"purged {len(purged)} soft-deleted document(s); {left} still restorable")
        for doc_id in purged:
            print(f"  purged: {doc_id}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Index statistics."""
    index = _open_index(args, lazy_vectors=True)
    try:
        stats = index.stats()
    finally:
        index.close()
    if args.json:
        _print_json(stats)
    else:
        print(_stats_table(stats))
    return 0


# per-process figures that say nothing in a one-shot CLI run (kept in --json)
_STATS_HIDDEN = ("query_embedding_cache",)


def _stats_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_stats_value(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def _stats_table(stats: dict[str, Any]) -> str:
    """Two aligned columns, nested figures on one line: `bm25  chunks 12, tokens 480, vocabulary 210`."""
    rows = [(k.replace("_", " "), _stats_value(v)) for k, v in stats.items() if k not in _STATS_HIDDEN]
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _ask_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {"index_dir": index_dir(args), **_scope_fields(args)}
    flt = _parse_filter(getattr(args, "filter", None))
    if flt is not None:
        overrides["filters"] = flt
    if getattr(args, "llm", None):
        overrides["llm"] = args.llm
    if getattr(args, "reranker", None):
        overrides["reranker"] = args.reranker
    if getattr(args, "redact_pii", False):
        overrides["redact_query_pii"] = True
    if getattr(args, "no_cache", False):
        overrides["cache"] = False
    if getattr(args, "router_model", None):
        overrides["router_model"] = args.router_model
    return overrides


def _print_answer(result: dict[str, Any]) -> None:
    print(result["answer"])
    print()
    for c in result.get("citations", []):
        where = _where(c.get("title"), c.get("section"))
        print(f"  [{c['n']}] {c['doc_id']} | {where}")
    timings = result.get("timings", {})
    print(
        f"\nroute={result.get('route')} k={result.get('k')} faithfulness={result.get('faithfulness', 0):.2f} "
        f"generator={result.get('generator')} total={timings.get('total', 0):.0f}ms"
    )
    for note in result.get("degradations", []):
        print(f"  degraded: {note}", file=sys.stderr)


def _check_llm(spec: str | None) -> None:
    """Fail before the graph runs when the chat model cannot be built (unknown provider, missing package
    or API key); a model that fails mid-run still degrades to the offline steps, as documented."""
    if spec is None:
        return
    check_llm_provider(spec)
    from ragroute.runtime import providers  # loaded on use: see the module doc

    providers.chat_model(spec)


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer a question with citations through the query graph."""
    if not args.question.strip():
        raise InputError("question must be a non-empty string")
    overrides = _ask_overrides(args)
    ctx = Context.from_dict(overrides)
    _check_llm(ctx.llm)
    from ragroute.api import ask  # loads LangGraph and compiles the graph: see the module doc

    result = ask(args.question, context=ctx, thread_id=args.thread)
    if args.json:
        _print_json(result)
    else:
        _print_answer(result)
    _say_scope(ctx)
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    """Index the bundled sample corpus, then search and ask a question on it."""
    from ragroute.api import ask  # loaded on use: see the module doc
    from ragroute.tools.ingest import ingest_paths

    corpus = sample_corpus_dir()
    index = _open_index(args)
    try:
        report = ingest_paths(index, [str(corpus)], progress=not args.json)
        hits = index.search(QUICKSTART_QUESTION, k=3, access=access_of(Context()))  # public, like `ask`
    finally:
        index.close()
    result = ask(args.question or QUICKSTART_QUESTION, index_dir=index_dir(args))
    if args.json:
        _print_json({"ingest": report.to_dict(), "search": [h.to_dict() for h in hits], "ask": result})
        return 0
    print(f"Indexed the sample corpus ({corpus}) into {index_dir(args)}:")
    print(
        f"  added {len(report.added)}, updated {len(report.updated)}, unchanged {len(report.unchanged)}, "
        f"failed {len(report.failed)}\n"
    )
    print(f"ragroute search {QUICKSTART_QUESTION!r} -k 3")
    _print_hits(hits)
    print(f"\nragroute ask {(args.question or QUICKSTART_QUESTION)!r}")
    _print_answer(result)
    return 0


# ---------------------------------------------------------------- parser


def _add_access_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"doc_type": "technical"}\'')
    p.add_argument(
        "--groups", help="caller's access groups, comma separated (default: public documents only)"
    )
    p.add_argument("--clearance", type=int, help="caller's security clearance (integer, default 0)")
    p.add_argument(
        "--all-access",
        action="store_true",
        help="read every document, whatever its access_groups and security_level",
    )


def _index_option(p: argparse.ArgumentParser) -> None:
    # --index also after the subcommand; SUPPRESS keeps a top-level --index when this one is not given
    p.add_argument("--index", default=argparse.SUPPRESS, help="index folder (same as before the command)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for every subcommand."""
    parser = argparse.ArgumentParser(prog="ragroute", description=__doc__)
    parser.add_argument(
        "--index",
        help="index folder or Milvus URL (milvus://HOST:PORT/NAME, milvus:///FILE.db); "
        "default: $RAGROUTE_INDEX, $RAGROUTE_INDEX_DIR or ~/.ragroute/index",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--json", action="store_true", help="machine-readable JSON output")
        _index_option(p)
        p.set_defaults(func=func)
        return p

    p = add("ingest", cmd_ingest, "ingest files or folders (.md .txt .html .pdf .jsonl)")
    p.add_argument("paths", nargs="+")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE", help="metadata for every document")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--prune",
        action="store_true",
        help="also delete indexed documents under these folders whose files are gone",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace documents another source stored under the same id (otherwise ids get the folder name)",
    )
    p.add_argument(
        "--redact-pii",
        action="store_true",
        help="replace emails, phones, cards, IBANs, IPs, SSNs and cued names with placeholders "
        "before indexing (mapping kept encrypted when RAGROUTE_PII_KEY is set)",
    )

    p = add("search", cmd_search, "hybrid search without generation")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5)
    _add_access_args(p)

    p = add("ask", cmd_ask, "answer a question with citations")
    p.add_argument("question")
    _add_access_args(p)
    p.add_argument(
        "--llm",
        help="chat model 'provider:model', e.g. openai:gpt-4o-mini; a local OpenAI-compatible server "
        "(llama.cpp, vLLM, Ollama): openai:NAME with OPENAI_BASE_URL set (default: offline)",
    )
    p.add_argument("--reranker", help="auto | none | local | cohere | cross-encoder:/path")
    p.add_argument(
        "--redact-pii",
        action="store_true",
        help="replace PII in the question before retrieval, models and traces",
    )
    p.add_argument("--no-cache", action="store_true", help="bypass the retrieval and answer caches")
    p.add_argument("--router-model", metavar="PATH", help="learned router file (ragroute train-router)")
    p.add_argument(
        "--thread",
        metavar="ID",
        help="a conversation: a follow-up is read with the thread's earlier questions "
        "(kept in <index>/threads.sqlite)",
    )

    p = add("delete", cmd_delete, "delete documents by id (soft: restorable until purged)")
    p.add_argument("doc_ids", nargs="+")
    p.add_argument("--hard", action="store_true", help="delete for good now (default: soft delete)")

    p = add("restore", cmd_restore, "bring soft-deleted documents back")
    p.add_argument("doc_ids", nargs="+")

    p = add("purge", cmd_purge, "hard-delete soft-deleted documents past the grace period")
    p.add_argument(
        "--older-than",
        type=float,
        default=30.0,
        metavar="DAYS",
        help="only documents soft-deleted at least DAYS ago (default 30; 0: all)",
    )

    add("stats", cmd_stats, "index statistics")

    p = add("quickstart", cmd_quickstart, "index the bundled sample corpus and answer a question")
    p.add_argument("--question", help=f"question to ask (default: {QUICKSTART_QUESTION!r})")

    _index_option(register_eval(sub))
    register_serve(sub)  # `serve` is always listed; without the `serve` extra it says how to install it
    register_mcp(sub)  # likewise `mcp` without the `mcp` extra
    register_router(sub)  # `train-router DATA...`: fit the learned router on the user's own data
    register_feedback(sub)  # `feedback export|list`: ratings of answers as a golden set
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a subcommand, turning user mistakes into one-line errors."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RagrouteError as exc:
        print(f"ragroute: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ragroute: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
