"""Load test of `ragroute serve` on loopback with DISTINCT questions: one embedded process, then 1..N replicas
sharing one Milvus location.

No question is ever asked twice of the same server process: every ask takes the next question of a shuffled
pool of BEIR claims (`--questions`, default SciFact's 809), so neither the answer cache nor the embedding or
retrieval caches serve a measured request (the old version repeated 8 questions; its ~57 req/s was mostly
cache). Warm-up asks are built from corpus titles, never from the pool. The index holds one BEIR corpus
(`--corpus`, default the 1031-abstract SciFact slice); the embedded one is the evaluation index
(evals/eval_index.py, built once and copied here), the Milvus one is ingested once into a `milvus-lite
server` (its data folder is kept under `--cache` for later runs).

For each configuration: an unloaded phase (1 client, `--baseline` sequential asks), then `--clients-per-
replica` x replicas clients, round-robin across the replicas, for `--seconds`. Reported: req/s, p50/p95/p99,
errors, ratio to one replica, the CPU seconds per request (user+system time of the replicas and the Milvus
server, read from /proc, over the requests) so the same load can be sized on a bigger machine, and each graph
node's mean wall time per request from the replicas' own /metrics histograms. A separate in-process probe
splits one search into query embedding and store time.

    python -m ragroute.evals.benchmarks.load_serve --replicas 1 2 3 --seconds 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"
DATA = Path(os.environ.get("RAGROUTE_DATA_DIR", "/work/shared/data"))
READER = "load-reader-key-01"
ADMIN = "load-admin-key-002"  # unrestricted: scrapes /metrics
KEYS = {
    READER: {"user": "reader", "groups": ["eng"], "clearance": 1},
    ADMIN: {"user": "admin", "unrestricted": True},
}
NODES = ("condense", "classify", "expand", "decompose", "retrieve", "rerank", "prune", "generate", "verify")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(latencies: Sequence[float]) -> dict[str, float]:
    """Count, mean and p50/p95/p99/max of latencies in milliseconds."""
    ms = [x * 1000 for x in latencies]
    return {
        "n": len(ms),
        "mean_ms": round(statistics.fmean(ms), 1) if ms else 0.0,
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1) if ms else 0.0,
    }


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def question_pool(names: Sequence[str], seed: int) -> list[str]:
    """Distinct questions (case- and space-insensitive) of the named BEIR sets, shuffled."""
    seen: dict[str, str] = {}
    for name in names:
        for q in read_jsonl(DATA / name / "queries.jsonl"):
            seen.setdefault(" ".join(q["text"].lower().split()), q["text"])
    pool = list(seen.values())
    random.Random(seed).shuffle(pool)
    return pool


def warm_questions(corpus: str, n: int) -> list[str]:
    """Questions built from corpus titles: they load models and code paths, never a pool question."""
    docs = read_jsonl(DATA / corpus / "corpus.jsonl")
    return [f"What does the study '{d['title'][:120]}' find?" for d in docs[:n]]


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of `pid` and every live descendant (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            stats[int(entry)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:  # fields after the name: state ppid ... utime(11) stime(12) cutime(13) cstime(14)
            total += sum(int(x) for x in stats[p][11:15]) / tick
        todo += children.get(p, [])
    return total


class Proc:
    """A subprocess with a log file, stopped gracefully with SIGINT."""

    def __init__(self, cmd: list[str], log_path: str, env: dict[str, str] | None = None) -> None:
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=self.log)

    def stop(self) -> int:
        """SIGINT, then kill after 60 s; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return int(self.proc.returncode)


def milvus_server(data_dir: str, port: int, log_path: str) -> Proc:
    """`milvus-lite server` on 127.0.0.1:`port`, answering once its port accepts connections."""
    exe = shutil.which("milvus-lite") or str(Path(sys.executable).with_name("milvus-lite"))
    server = Proc(
        [exe, "server", "--data-dir", data_dir, "--host", "127.0.0.1", "--port", str(port)], log_path
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"milvus-lite server exited with {server.proc.returncode}; see {log_path}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.3)
    raise TimeoutError("milvus-lite server not up after 120 s")


def serve(location: str, port: int, log_path: str) -> Proc:
    """`python -m ragroute.cli serve` over `location` (a folder or milvus://...)."""
    env = {**os.environ, "RAGROUTE_API_KEYS": json.dumps(KEYS), "HF_HUB_OFFLINE": "1"}
    env.pop("LANGFUSE_PUBLIC_KEY", None)  # no tracing backend in a load test
    cmd = [sys.executable, "-m", "ragroute.cli", "serve", "--index", location, "--port", str(port)]
    return Proc([*cmd, "--log-level", "warning"], log_path, env)


async def wait_ready(client: Any, url: str, proc: Proc, timeout: float = 300.0) -> None:
    """Poll /ready until the index is open and the embedder answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.proc.returncode}; see {proc.log.name}")
        try:
            if (await client.get(f"{url}/ready")).status_code == 200:
                return
        except Exception:  # not listening yet
            pass
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout}s")


async def node_seconds(client: Any, urls: Sequence[str]) -> dict[str, float]:
    """Sum over `urls` of each node's latency histogram sum (seconds), from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for url in urls:
        r = await client.get(f"{url}/metrics", headers={"X-API-Key": ADMIN})
        for fam in text_string_to_metric_families(r.text):
            for s in fam.samples:
                if s.name == "ragroute_node_duration_seconds_sum":
                    out[s.labels["node"]] = out.get(s.labels["node"], 0.0) + s.value
    return out


class Phase:
    """Latencies, errors and abstentions of one measured phase."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.abstained = 0

    async def ask(self, client: Any, url: str, question: str) -> None:
        """POST /ask/invoke as the reader; a non-200, a missing answer or an exception is an error."""
        start = time.perf_counter()
        try:
            body = {"input": {"question": question}}
            r = await client.post(f"{url}/ask/invoke", json=body, headers={"X-API-Key": READER})
            elapsed = time.perf_counter() - start
            out = r.json().get("output") if r.status_code == 200 else None
            if not isinstance(out, dict) or not isinstance(out.get("answer"), str):
                self.errors.append(f"HTTP {r.status_code}: {r.text[:120]}")
                return
            if out.get("cache", {}).get("response") == "hit":
                self.errors.append("answer-cache hit: a question repeated")
            self.abstained += bool(out.get("abstained"))
            self.latencies.append(elapsed)
        except Exception as exc:  # a load test records every failure instead of stopping
            self.errors.append(f"{type(exc).__name__}: {exc}"[:160])


async def measure(
    client: Any, urls: list[str], pids: list[int], clients: int, seconds: float, pool: Any, sequential: int
) -> dict[str, Any]:
    """Unloaded phase (sequential asks on urls[0]) then `clients` loops round-robin over `urls`."""
    unloaded = Phase()
    for _ in range(sequential):
        q = next(pool, None)
        if q is None:
            break
        await unloaded.ask(client, urls[0], q)
    loaded = Phase()
    nodes_before = await node_seconds(client, urls)
    cpu_before = [cpu_seconds(p) for p in pids]
    own_before = sum(os.times()[:2])
    deadline = time.monotonic() + seconds
    exhausted = False

    async def loop(n: int) -> None:
        nonlocal exhausted
        while time.monotonic() < deadline:
            q = next(pool, None)
            if q is None:
                exhausted = True
                return
            await loaded.ask(client, urls[n % len(urls)], q)

    started = time.monotonic()
    await asyncio.gather(*(loop(n) for n in range(clients)))
    wall = time.monotonic() - started
    cpu = [cpu_seconds(p) - b for p, b in zip(pids, cpu_before, strict=True)]
    nodes_after = await node_seconds(client, urls)
    done = len(loaded.latencies)
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": done + len(loaded.errors),
        "throughput_rps": round(done / wall, 2) if wall else 0.0,
        "errors": len(loaded.errors),
        "error_samples": loaded.errors[:5],
        "pool_exhausted": exhausted,
        "abstained": loaded.abstained,
        "ask": summarize(loaded.latencies),
        "unloaded": summarize(unloaded.latencies),
        "cpu_s": [round(c, 2) for c in cpu],
        "cpu_ms_per_request": round(1000 * sum(cpu) / done, 1) if done else None,
        "client_cpu_ms_per_request": round(1000 * (sum(os.times()[:2]) - own_before) / done, 1)
        if done
        else None,
        "node_ms_per_request": {
            n: round(1000 * (nodes_after.get(n, 0.0) - nodes_before.get(n, 0.0)) / done, 1)
            for n in NODES
            if done and nodes_after.get(n, 0.0) > nodes_before.get(n, 0.0)
        },
    }


async def run_config(
    args: argparse.Namespace, location: str, replicas: int, extra_pids: list[int], work: str
) -> dict[str, Any]:
    """Start `replicas` servers on `location`, warm them, measure, stop them."""
    import httpx

    ports = [free_port() for _ in range(replicas)]
    procs = [serve(location, p, os.path.join(work, f"serve-{replicas}-{i}.log")) for i, p in enumerate(ports)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    try:
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            for url, proc in zip(urls, procs, strict=True):
                await wait_ready(client, url, proc)
            warm = Phase()
            for url in urls:
                for q in warm_questions(args.corpus, args.warm):
                    await warm.ask(client, url, q)
            pool = iter(question_pool(args.questions, args.seed))  # fresh processes: fresh caches
            clients = args.clients_per_replica * replicas
            sequential = args.baseline if replicas == 1 else 0
            pids = [p.proc.pid for p in procs]
            result = await measure(client, urls, pids + extra_pids, clients, args.seconds, pool, sequential)
            result["warm_errors"] = len(warm.errors)
    finally:
        exits = [p.stop() for p in procs]
    return {"replicas": replicas, **result, "exit_codes": exits}


def probe_search(location: str, questions: list[str]) -> dict[str, Any]:
    """In-process, one at a time: CPU ms (every thread of this process) per query embedding and per whole
    index search (its query embedding included); CPU time, not wall time, so other load on the machine
    does not inflate it. Torch runs one thread here: on a busy machine its idle threads spin, and that spin
    would count as embedding CPU."""
    import torch
    from ragroute.tools.embeddings import get_embedder

    torch.set_num_threads(1)
    from ragroute.tools.index import HybridIndex

    embedder = get_embedder("minilm")
    for i in range(5):  # model load and first calls out of the measurement
        embedder.embed_query(f"warm up {i}")
    start = time.process_time()
    for q in questions:
        embedder.embed_query(q + " ?")  # not the strings searched below (no embedding-cache hit there)
    embed_ms = 1000 * (time.process_time() - start) / len(questions)
    with HybridIndex.open(location) as index:
        for i in range(5):
            index.search(f"warm up {i}", 5)
        start = time.process_time()
        for q in questions:
            index.search(q, 20)
        search_ms = 1000 * (time.process_time() - start) / len(questions)
    return {"questions": len(questions), "embed_ms": round(embed_ms, 1), "search_ms": round(search_ms, 1)}


def embedded_index(corpus: str, work: str) -> tuple[str, dict[str, Any]]:
    """The corpus's evaluation index (built once), copied into `work`; (folder, stats)."""
    from ragroute.evals.datasets import load_dataset
    from ragroute.evals.eval_index import build_index

    index, path, _ = build_index(load_dataset(str(DATA / corpus)), progress=False)
    stats = index.stats()
    index.close()
    target = os.path.join(work, "index")
    shutil.copytree(path, target)
    return target, {"documents": stats.get("documents"), "chunks": stats.get("chunks")}


def milvus_index(corpus: str, location: str) -> dict[str, Any]:
    """Ingest the corpus into `location` unless it holds it already; its stats and the ingest seconds."""
    from ragroute.evals.datasets import load_dataset
    from ragroute.evals.eval_index import _documents
    from ragroute.tools.index import HybridIndex
    from ragroute.tools.ingest import ingest_documents

    dataset = load_dataset(str(DATA / corpus))
    with HybridIndex.open(location) as index:
        started = time.perf_counter()
        if index.stats().get("documents") != len(dataset.corpus):
            report = ingest_documents(index, _documents(dataset), progress=False, use_sidecar=False)
            if report.failed:
                raise RuntimeError(f"{len(report.failed)} documents failed: {report.failed[:3]}")
        stats = index.stats()
    return {
        "documents": stats.get("documents"),
        "chunks": stats.get("chunks"),
        "ingest_s": round(time.perf_counter() - started, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; returns the JSON-able report."""
    work = tempfile.mkdtemp(prefix="ragroute-load-")
    pool = question_pool(args.questions, args.seed)
    report: dict[str, Any] = {
        "benchmark": "load_serve",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        },
        "setup": {
            "corpus": args.corpus,
            "questions": f"{len(pool)} distinct ({'+'.join(args.questions)}), none asked twice per process",
            "warm_asks_per_replica": args.warm,
            "seconds_per_config": args.seconds,
            "clients_per_replica": args.clients_per_replica,
            "baseline_sequential_asks": args.baseline,
            "generator": "offline extractive (no LLM)",
        },
        "configs": [],
    }
    try:
        if not args.skip_embedded:
            folder, stats = embedded_index(args.corpus, work)
            report["setup"]["embedded_index"] = stats
            result = await run_config(args, folder, 1, [], work)
            report["configs"].append({"backend": "embedded", **result})
            report["probe_embedded"] = probe_search(folder, pool[: args.probe])
            print(json.dumps(report["configs"][-1]), flush=True)
        if args.replicas:
            data_dir = os.path.join(os.path.expanduser(args.cache), f"milvus-{args.corpus}")
            port = free_port()
            milvus = milvus_server(data_dir, port, os.path.join(work, "milvus.log"))
            location = f"milvus://127.0.0.1:{port}/load_{args.corpus}"
            try:
                report["setup"]["milvus_index"] = milvus_index(args.corpus, location)
                for n in args.replicas:
                    result = await run_config(args, location, n, [milvus.proc.pid], work)
                    report["configs"].append({"backend": "milvus-lite server", **result})
                    print(json.dumps(report["configs"][-1]), flush=True)
                report["probe_milvus"] = probe_search(location, pool[: args.probe])
            finally:
                milvus.stop()
    finally:
        report["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for backend in {c["backend"] for c in report["configs"]}:
        rows = [c for c in report["configs"] if c["backend"] == backend]
        one = next((c for c in rows if c["replicas"] == 1), None)
        for c in rows:
            if one and one["throughput_rps"]:
                c["rps_vs_one_replica"] = round(c["throughput_rps"] / one["throughput_rps"], 2)
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: one row per configuration, then the per-node and probe breakdowns."""
    st, m = report["setup"], report["machine"]
    lines = [
        "# Load test: `ragroute serve` with distinct questions, embedded and Milvus replicas",
        "",
        f"{report['when']}, {m['cpus']} CPUs shared with other work (1-minute load average "
        f"{m['load_avg_1m_at_start']} at the start, {m.get('load_avg_1m_at_end')} at the end). Corpus "
        f"{st['corpus']}; questions: {st['questions']}; {st['generator']}. Each configuration: fresh "
        f"server processes, {st['warm_asks_per_replica']} warm-up asks per replica (corpus titles), "
        f"{st['baseline_sequential_asks']} sequential asks (unloaded, one replica only), then "
        f"{st['clients_per_replica']} clients per replica round-robin for {st['seconds_per_config']} s.",
        "",
        "| backend | replicas | clients | req/s | vs 1 replica | p50 ms | p95 ms | p99 ms | unloaded p50 ms "
        "| errors | CPU ms/request (servers) | client CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in report["configs"]:
        a, u = c["ask"], c["unloaded"]
        lines.append(
            f"| {c['backend']} | {c['replicas']} | {c['clients']} | {c['throughput_rps']} "
            f"| {c.get('rps_vs_one_replica', '')} | {a['p50_ms']} | {a['p95_ms']} | {a['p99_ms']} "
            f"| {u['p50_ms'] if u['n'] else ''} | {c['errors']} | {c['cpu_ms_per_request']} "
            f"| {c['client_cpu_ms_per_request']} |"
        )
    lines += [
        "",
        "Mean wall time per request in each graph node under load (from the replicas' /metrics):",
        "",
    ]
    lines += ["| backend | replicas | " + " | ".join(NODES) + " |", "|---|---:|" + "---:|" * len(NODES)]
    for c in report["configs"]:
        per = c["node_ms_per_request"]
        lines.append(
            f"| {c['backend']} | {c['replicas']} | " + " | ".join(str(per.get(n, "")) for n in NODES) + " |"
        )
    for key in ("probe_embedded", "probe_milvus"):
        if key in report:
            p = report[key]
            lines.append(
                f"\n{key.removeprefix('probe_')} search probe (in-process, one at a time, {p['questions']} "
                f"questions, CPU time of this process): query embedding {p['embed_ms']} ms, whole hybrid "
                f"search {p['search_ms']} ms (so {round(p['search_ms'] - p['embed_ms'], 1)} ms is the "
                "client side of store round trips, BM25 and fusion)."
            )
    if "milvus_index" in st:
        mi = st["milvus_index"]
        lines.append(
            f"\nMilvus index: {mi['documents']} documents, {mi['chunks']} chunks (ingest {mi['ingest_s']} s)."
        )
    for note in report.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: run, print a summary, write the JSON and Markdown reports."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", default="scifact_dev", help="BEIR folder under $RAGROUTE_DATA_DIR indexed"
    )
    parser.add_argument(
        "--questions", nargs="+", default=["scifact"], help="BEIR folders whose queries are asked"
    )
    parser.add_argument(
        "--replicas", type=int, nargs="*", default=[1, 2, 3], help="Milvus replica counts (none: skip)"
    )
    parser.add_argument("--skip-embedded", action="store_true", help="no embedded single-process run")
    parser.add_argument("--seconds", type=float, default=40.0, help="loaded phase per configuration")
    parser.add_argument("--clients-per-replica", type=int, default=4)
    parser.add_argument("--baseline", type=int, default=20, help="sequential asks before the loaded phase")
    parser.add_argument("--warm", type=int, default=6, help="warm-up asks per replica (from corpus titles)")
    parser.add_argument("--probe", type=int, default=40, help="questions of the in-process search probe")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--cache", default="~/.cache/ragroute-load", help="where the Milvus data folder is kept"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.replicas) or args.clients_per_replica < 1:
        parser.error("replica counts and --clients-per-replica must be >= 1")
    report = asyncio.run(run(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "load_serve.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "load_serve.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(c["errors"] == 0 for c in report["configs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
