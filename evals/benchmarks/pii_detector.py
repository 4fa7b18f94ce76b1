"""Measure the PII detector: per-type precision/recall/F1 on a labelled sample, plus precision on real text.

Run: `.venv/bin/python -m ragroute.evals.benchmarks.pii_detector`
(writes evals/results/pii_detector.{json,md}).
A prediction counts as correct (strict) when type, start and end all equal a gold span; the lenient score
accepts any overlap with a gold span of the same type. Each gold span is matched at most once.

Real text: every detection on the BEIR corpora (hotpotqa, clapnq, scifact; found via
ragroute.evals.datasets) is
looked up in a file of hand judgements (doc, type, text -> pii true/false). Judging rule: a PERSON span is
PII when it names (all or part of) a real or fictional individual, not a place, office, work or event
named after one; other types are PII when the value really is that kind of identifier. Recall cannot be
measured there (nobody labelled what was missed); detections without a judgement are listed as unjudged.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from ragroute.evals.datasets import resolve_dataset
from ragroute.tools.errors import InputError
from ragroute.tools.pii import ENTITY_TYPES, detect_pii

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SAMPLE = ROOT / "evals" / "data" / "pii_sample.jsonl"
DEFAULT_OUT = ROOT / "evals" / "results"
DEFAULT_JUDGEMENTS = ROOT / "evals" / "data" / "pii_realtext_judgements.jsonl"
REALTEXT_CORPORA = ("hotpotqa", "clapnq", "scifact")


def load_sample(path: Path) -> list[dict[str, Any]]:
    """Read the labelled sample: one {"id", "text", "spans": [{"type","start","end"}]} per line."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            for s in row["spans"]:
                if s["type"] not in ENTITY_TYPES or not 0 <= s["start"] < s["end"] <= len(row["text"]):
                    raise InputError(f"{path}:{n}: bad span {s}")
            rows.append(row)
    return rows


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}


def evaluate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Score detect_pii against the gold spans; returns strict and lenient per-type and micro scores."""
    modes: dict[str, dict[str, list[int]]] = {
        m: {t: [0, 0, 0] for t in ENTITY_TYPES} for m in ("strict", "lenient")
    }
    errors: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for row in rows:
        text = row["text"]
        pred = [(e.type, e.start, e.end) for e in detect_pii(text)]
        gold = [(s["type"], s["start"], s["end"]) for s in row["spans"]]
        for mode in ("strict", "lenient"):
            unmatched = list(gold)
            for p in pred:
                hit = None
                for g in unmatched:
                    same = p == g if mode == "strict" else (p[0] == g[0] and p[1] < g[2] and g[1] < p[2])
                    if same:
                        hit = g
                        break
                if hit is not None:
                    unmatched.remove(hit)
                    modes[mode][p[0]][0] += 1
                else:
                    modes[mode][p[0]][1] += 1
                    if mode == "strict":
                        errors.append(
                            {"id": row["id"], "kind": "fp", "type": p[0], "text": text[p[1] : p[2]]}
                        )
            for g in unmatched:
                modes[mode][g[0]][2] += 1
                if mode == "strict":
                    errors.append({"id": row["id"], "kind": "fn", "type": g[0], "text": text[g[1] : g[2]]})
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {}
    for mode, per in modes.items():
        out[mode] = {t: _prf(*v) for t, v in per.items()}
        tot = [sum(v[i] for v in per.values()) for i in range(3)]
        out[mode]["micro"] = _prf(*tot)
    out["errors"] = errors
    out["seconds"] = round(elapsed, 4)
    return out


def scan_realtext(corpora: tuple[str, ...], judgements: Path) -> dict[str, Any]:
    """Run the detector over real corpora and score its detections against hand judgements."""
    judged: dict[tuple[str, str, str], bool] = {}
    if judgements.exists():
        with open(judgements, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    j = json.loads(line)
                    judged[(j["doc"], j["type"], j["text"])] = bool(j["pii"])
    per: dict[str, dict[str, Any]] = {
        t: {"detections": 0, "tp": 0, "fp": 0, "unjudged": 0} for t in ENTITY_TYPES
    }
    scanned: dict[str, int] = {}
    fps: list[dict[str, str]] = []
    unjudged: list[dict[str, str]] = []
    chars = 0
    t0 = time.perf_counter()
    for name in corpora:
        try:
            folder = resolve_dataset(name)
        except InputError:
            continue
        scanned[name] = 0
        with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                text = f"{doc.get('title', '')}\n{doc.get('text', '')}"
                scanned[name] += 1
                chars += len(text)
                for e in detect_pii(text):
                    row = per[e.type]
                    row["detections"] += 1
                    verdict = judged.get((doc["_id"], e.type, e.text))
                    item = {"doc": doc["_id"], "type": e.type, "text": e.text}
                    if verdict is None:
                        row["unjudged"] += 1
                        unjudged.append(item)
                    elif verdict:
                        row["tp"] += 1
                    else:
                        row["fp"] += 1
                        fps.append(item)
    for row in per.values():
        j = row["tp"] + row["fp"]
        row["precision"] = round(row["tp"] / j, 4) if j else None
    tot: dict[str, Any] = {k: sum(r[k] for r in per.values()) for k in ("detections", "tp", "fp", "unjudged")}
    tot["precision"] = round(tot["tp"] / (tot["tp"] + tot["fp"]), 4) if tot["tp"] + tot["fp"] else None
    return {
        "corpora": scanned,
        "characters": chars,
        "seconds": round(time.perf_counter() - t0, 2),
        "per_type": per,
        "total": tot,
        "false_positives": fps,
        "unjudged": unjudged,
    }


def write_results(
    result: dict[str, Any],
    rows: list[dict[str, Any]],
    out_dir: Path,
    sample: Path,
    realtext: dict[str, Any] | None = None,
) -> None:
    """Write the JSON result and a Markdown table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gold_counts = {t: sum(s["type"] == t for r in rows for s in r["spans"]) for t in ENTITY_TYPES}
    payload = {
        "benchmark": "pii_detector",
        "sample": str(sample.relative_to(ROOT)) if sample.is_relative_to(ROOT) else str(sample),
        "sentences": len(rows),
        "sentences_without_pii": sum(not r["spans"] for r in rows),
        "gold_spans": gold_counts,
        "python": platform.python_version(),
        **result,
        "realtext": realtext,
    }
    (out_dir / "pii_detector.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    lines = [
        "# PII detector: precision / recall on the labelled sample",
        "",
        f"Sample: `{payload['sample']}`: {len(rows)} sentences "
        f"({payload['sentences_without_pii']} with no PII, "
        f"many of them hard negatives), {sum(gold_counts.values())} gold spans. Detector: `tools/pii.py` "
        "(regex + validators, names only after an honorific or a 'my name is'/'Name:' cue).",
        "",
        "Strict = exact type and span; lenient = same type, any overlap.",
        "",
        "Caveat: the sample was written (and committed) before the detector, but by the same author, so it"
        " shares the author's idea of what PII looks like; expect lower numbers on real documents (other"
        " phone formats, names without an honorific, IDs that happen to pass Luhn).",
        "",
        "| type | gold | TP | FP | FN | precision | recall | F1 | lenient P | lenient R |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in [*ENTITY_TYPES, "micro"]:
        s, lz = result["strict"][t], result["lenient"][t]
        gold = sum(gold_counts.values()) if t == "micro" else gold_counts[t]
        lines.append(
            f"| {t} | {gold} | {s['tp']} | {s['fp']} | {s['fn']} | {s['precision']:.3f} | {s['recall']:.3f} "
            f"| {s['f1']:.3f} | {lz['precision']:.3f} | {lz['recall']:.3f} |"
        )
    lines += ["", "## Errors (strict)", ""]
    if not result["errors"]:
        lines.append("none")
    for e in result["errors"]:
        lines.append(f"- {e['id']} {e['kind'].upper()} {e['type']}: `{e['text']}`")
    if realtext is not None and realtext["corpora"]:
        docs = ", ".join(f"{k} ({v} docs)" for k, v in realtext["corpora"].items())
        lines += [
            "",
            "## Precision on real text",
            "",
            f"Every detection on {docs}, {realtext['characters']:,} characters, judged by hand "
            "(`evals/data/pii_realtext_judgements.jsonl`; rule in the benchmark's docstring). These corpora "
            "hold little PII, so this mostly measures false alarms; recall is not measurable here. The "
            "judged detections were also used to find and fix false-alarm patterns (thousands separators, "
            "offices such as 'Lord High Treasurer'), so this is not a held-out score.",
            "",
            "| type | detections | judged PII | judged not PII | unjudged | precision |",
            "|---|---|---|---|---|---|",
        ]
        for t, r in [*realtext["per_type"].items(), ("total", realtext["total"])]:
            if r["detections"] or t == "total":
                prec = "n/a" if r["precision"] is None else f"{r['precision']:.3f}"
                lines.append(
                    f"| {t} | {r['detections']} | {r['tp']} | {r['fp']} | {r['unjudged']} | {prec} |"
                )
        lines += ["", "False positives:", ""]
        lines += [f"- {e['doc']} {e['type']}: `{e['text']}`" for e in realtext["false_positives"]] or ["none"]
        if realtext["unjudged"]:
            lines += ["", "Unjudged detections (review and add to the judgements file):", ""]
            lines += [f"- {e['doc']} {e['type']}: `{e['text']}`" for e in realtext["unjudged"]]
    (out_dir / "pii_detector.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--judgements", type=Path, default=DEFAULT_JUDGEMENTS)
    ap.add_argument("--no-realtext", action="store_true", help="skip the scan of the BEIR corpora")
    args = ap.parse_args(argv)
    rows = load_sample(args.sample)
    result = evaluate(rows)
    realtext = None if args.no_realtext else scan_realtext(REALTEXT_CORPORA, args.judgements)
    write_results(result, rows, args.out, args.sample, realtext)
    m = result["strict"]["micro"]
    print(f"sample: micro P={m['precision']:.3f} R={m['recall']:.3f} F1={m['f1']:.3f}")
    if realtext is not None:
        t = realtext["total"]
        print(
            f"real text: {t['detections']} detections, precision {t['precision']}, unjudged {t['unjudged']}"
        )
    print(f"-> {args.out}/pii_detector.md")
    return result


if __name__ == "__main__":
    main()
