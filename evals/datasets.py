"""Evaluation dataset loaders: BEIR folders (corpus/queries/qrels) and golden-set JSONL files.

Both load into one `EvalDataset`: the corpus to index (empty for a golden set, which is evaluated
against the user's existing index), the queries with their gold answers and sources, and qrels.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragroute.tools.errors import InputError

SHORT_NAMES = ("scifact", "scifact_dev", "clapnq", "hotpotqa")
SPLIT_PREFERENCE = ("test", "dev", "validation", "train")
BEIR_LAYOUT = "a BEIR folder needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
GOLDEN_FIELDS = ("id", "question", "expected_answer", "expected_sources", "answerable", "metadata")
_QUERY_KEYS = ("_id", "id", "text", "answers", "gold_doc_ids", "answerable")


@dataclass
class EvalQuery:
    """One question: gold answers, gold (supporting) document ids, and whether it can be answered."""

    qid: str
    text: str
    answers: list[str] = field(default_factory=list)
    gold_doc_ids: list[str] = field(default_factory=list)
    answerable: bool | None = None  # None: not labelled
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalDataset:
    """A loaded evaluation set. `qrels[qid][doc_id] = grade`; `corpus[doc_id] = {"title", "text", ...}`."""

    name: str
    kind: str  # "beir" | "golden"
    path: str
    queries: list[EvalQuery]
    qrels: dict[str, dict[str, int]]
    corpus: dict[str, dict[str, Any]] = field(default_factory=dict)
    split: str | None = None

    def limited(self, limit: int | None) -> list[EvalQuery]:
        """The first `limit` queries (all when None), in file order."""
        if limit is not None and limit < 1:
            raise InputError(f"--limit must be a positive integer, got {limit!r}")
        return self.queries if limit is None else self.queries[:limit]

    def corpus_fingerprint(self) -> str:
        """A short hash of the corpus contents: an index built from it is reused while this is unchanged."""
        digest = hashlib.sha256()
        for doc_id in sorted(self.corpus):
            doc = self.corpus[doc_id]
            digest.update(f"{doc_id}\x1f{doc.get('title', '')}\x1f{doc.get('text', '')}\x1e".encode())
        return digest.hexdigest()[:16]


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def _str_list(value: Any, where: str, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return [str(v) for v in value]
    raise InputError(f"{where}: {name!r} must be a string or a list of strings, got {value!r}")


def _opt_bool(value: Any, where: str, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InputError(f"{where}: {name!r} must be true or false, got {value!r}")


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (`query-id corpus-id score`, header line optional)."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read qrels {path}: {exc.strerror}") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) == 4:  # TREC style: qid 0 docid grade
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise InputError(f"{path}:{lineno}: expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}")
        qid, doc_id, grade = (p.strip() for p in parts)
        try:
            value = int(float(grade))
        except ValueError:
            if lineno == 1:
                continue  # header
            raise InputError(f"{path}:{lineno}: score {grade!r} is not a number") from None
        qrels.setdefault(qid, {})[doc_id] = value
    if not qrels:
        raise InputError(f"{path}: no relevance judgements found")
    return qrels


def choose_qrels(folder: Path, split: str | None = None) -> Path:
    """The qrels file for `split` (a name like "test" or a path); else the only file, else test/dev/train."""
    if split and (split.endswith(".tsv") or os.sep in split):
        path = Path(split)
        if not path.is_absolute() and not path.exists():
            path = folder / split
        if not path.exists():
            raise InputError(f"qrels file {split!r} does not exist")
        return path
    qdir = folder / "qrels"
    files = sorted(qdir.glob("*.tsv")) if qdir.is_dir() else []
    names = [f.stem for f in files]
    if not files:
        raise InputError(f"{folder}: no qrels/*.tsv file; {BEIR_LAYOUT}")
    if split:
        if split not in names:
            raise InputError(f"{folder}: no qrels for split {split!r}; options: {names}")
        return qdir / f"{split}.tsv"
    if len(files) == 1:
        return files[0]
    for name in SPLIT_PREFERENCE:
        if name in names:
            return qdir / f"{name}.tsv"
    raise InputError(f"{folder}: several qrels files {names}; choose one with --split")


def load_beir(path: str | Path, split: str | None = None, *, name: str | None = None) -> EvalDataset:
    """Load a BEIR folder: corpus.jsonl ({_id, title, text}), queries.jsonl, qrels/<split>.tsv.

    Queries are those judged in the chosen qrels plus any marked `"answerable": false` (unanswerable
    questions have no relevant passage, so BEIR qrels leave them out). Optional query fields: answers,
    gold_doc_ids (default: the qrels' relevant docs), answerable, anything else kept as metadata.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"BEIR dataset folder {folder} does not exist")
    for required in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / required).is_file():
            raise InputError(f"{folder}: missing {required}; {BEIR_LAYOUT}")
    qrels_path = choose_qrels(folder, split)
    qrels = load_qrels(qrels_path)

    corpus: dict[str, dict[str, Any]] = {}
    for lineno, rec in _read_jsonl(folder / "corpus.jsonl"):
        where = f"{folder / 'corpus.jsonl'}:{lineno}"
        doc_id = rec.get("_id", rec.get("id"))
        if doc_id is None or not isinstance(rec.get("text"), str):
            raise InputError(f"{where}: a corpus record needs '_id' and a string 'text'")
        extra = {k: v for k, v in rec.items() if k not in ("_id", "id", "title", "text")}
        corpus[str(doc_id)] = {"title": str(rec.get("title") or ""), "text": rec["text"], "metadata": extra}

    queries: list[EvalQuery] = []
    for lineno, rec in _read_jsonl(folder / "queries.jsonl"):
        where = f"{folder / 'queries.jsonl'}:{lineno}"
        qid, text = rec.get("_id", rec.get("id")), rec.get("text")
        if qid is None or not isinstance(text, str):
            raise InputError(f"{where}: a query record needs '_id' and a string 'text'")
        qid = str(qid)
        answerable = _opt_bool(rec.get("answerable"), where, "answerable")
        if qid not in qrels and answerable is not False:
            continue  # a query of another split
        judged = qrels.get(qid, {})
        gold = _str_list(rec.get("gold_doc_ids"), where, "gold_doc_ids")
        gold = gold or [d for d, g in judged.items() if g > 0]
        meta = {k: v for k, v in rec.items() if k not in _QUERY_KEYS}
        queries.append(
            EvalQuery(
                qid=qid,
                text=text,
                answers=_str_list(rec.get("answers"), where, "answers"),
                gold_doc_ids=gold,
                answerable=answerable,
                metadata=meta,
            )
        )
    if not queries:
        raise InputError(f"{folder}: no query of queries.jsonl appears in {qrels_path.name}")
    judged_docs = {d for rel in qrels.values() for d in rel}
    if judged_docs and not judged_docs & set(corpus):
        example = sorted(judged_docs)[0]
        raise InputError(f"{qrels_path}: none of the judged documents is in corpus.jsonl (e.g. {example!r})")
    return EvalDataset(
        name=name or folder.name,
        kind="beir",
        path=str(folder),
        queries=queries,
        qrels={q.qid: qrels[q.qid] for q in queries if q.qid in qrels},
        corpus=corpus,
        split=qrels_path.stem,
    )


def load_golden(path: str | Path, *, name: str | None = None) -> EvalDataset:
    """Load a golden set: JSONL of {question, expected_answer, expected_sources, answerable, id?}.

    `expected_answer` is a string or a list of acceptable answers; `expected_sources` lists document
    ids, sources (file paths/URLs) or titles that should be retrieved and cited; `answerable` defaults
    to true. Relevance grade 1 is given to every expected source.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"golden set {file} does not exist")
    queries: list[EvalQuery] = []
    qrels: dict[str, dict[str, int]] = {}
    seen: set[str] = set()
    for lineno, rec in _read_jsonl(file):
        where = f"{file}:{lineno}"
        question = rec.get("question")
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{where}: a golden record needs a non-empty 'question' string")
        unknown = set(rec) - set(GOLDEN_FIELDS)
        if unknown:
            options = ", ".join(GOLDEN_FIELDS)
            raise InputError(f"{where}: unknown field(s) {sorted(unknown)}; options: {options}")
        qid = str(rec.get("id", lineno))
        if qid in seen:
            raise InputError(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        answerable = _opt_bool(rec.get("answerable"), where, "answerable")
        answerable = True if answerable is None else answerable
        sources = _str_list(rec.get("expected_sources"), where, "expected_sources")
        answers = _str_list(rec.get("expected_answer"), where, "expected_answer")
        if answerable and not answers and not sources:
            raise InputError(f"{where}: an answerable record needs 'expected_answer' or 'expected_sources'")
        meta = rec.get("metadata") or {}
        if not isinstance(meta, dict):
            raise InputError(f"{where}: 'metadata' must be an object")
        queries.append(EvalQuery(qid, question, answers, sources, answerable, dict(meta)))
        if sources:
            qrels[qid] = {s: 1 for s in sources}
    if not queries:
        raise InputError(f"golden set {file} has no records")
    return EvalDataset(name=name or file.stem, kind="golden", path=str(file), queries=queries, qrels=qrels)


def data_dirs() -> list[Path]:
    """Where short dataset names are looked up: $RAGROUTE_DATA_DIR, then ../shared/data from the CWD."""
    dirs = []
    env = os.environ.get("RAGROUTE_DATA_DIR")
    if env:
        dirs.append(Path(env))
    dirs.append(Path.cwd().parent / "shared" / "data")
    return dirs


def resolve_dataset(spec: str | Path) -> Path:
    """Turn a dataset argument (a folder, a .jsonl file, or a short name like "scifact") into a path."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    name = str(spec)
    if os.sep not in name and not name.endswith(".jsonl"):
        for base in data_dirs():
            candidate = base / name
            if candidate.exists():
                return candidate
    looked = ", ".join(str(d) for d in data_dirs())
    raise InputError(
        f"dataset {name!r} not found: give a BEIR folder, a golden .jsonl file, or a short name "
        f"({', '.join(SHORT_NAMES)}) found under {looked} (set RAGROUTE_DATA_DIR)"
    )


def load_dataset(spec: str | Path, split: str | None = None) -> EvalDataset:
    """Load a BEIR folder or golden JSONL given as a path or short name."""
    path = resolve_dataset(spec)
    if path.is_dir():
        return load_beir(path, split, name=path.name)
    if path.suffix == ".jsonl":
        if split:
            raise InputError("--split applies to BEIR folders, not to a golden .jsonl file")
        return load_golden(path)
    raise InputError(f"dataset {str(spec)!r} is neither a BEIR folder nor a .jsonl golden set")
