"""Prometheus metrics the query path records: node latencies, retrieval scores, documents per answer,
tokens and cost, abstentions, degradations and provider timeouts, cache levels.

A `Metrics` owns its own CollectorRegistry (two apps in one process never share counters). Recording goes
to the Metrics made active with `recording(metrics)` (a ContextVar: the server's middleware sets it per
request, and LangGraph's tasks and threads copy it into every node). With none active, recording is a
no-op, so the CLI and the Python API pay nothing. Nodes never call this module: `steps.timed` records
each node's latency and update once, `steps.degrade` each degradation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langgraph.types import Overwrite
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# fused scores are RRF sums (about 1/61 per retriever that ranks a hit first); plain scores reach 1
SCORE_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)
COUNT_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50)

_ACTIVE: ContextVar[Metrics | None] = ContextVar("ragroute_metrics", default=None)


class CacheCollector(Collector):
    """The process's cache levels (hits, misses, entries) read at scrape time from `stats()`."""

    def __init__(self, stats: Any) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        hits = CounterMetricFamily(
            "ragroute_cache_hits", "Cache hits per level (process-wide)", labels=["level"]
        )
        misses = CounterMetricFamily(
            "ragroute_cache_misses", "Cache misses per level (process-wide)", labels=["level"]
        )
        entries = GaugeMetricFamily(
            "ragroute_cache_entries", "Entries held per cache level", labels=["level"]
        )
        for level, st in self._stats().items():
            hits.add_metric([level], st.get("hits", 0))
            misses.add_metric([level], st.get("misses", 0))
            entries.add_metric([level], st.get("size", 0))
        yield from (hits, misses, entries)


class Metrics:
    """One registry of ragroute's metrics (one per app); `render()` is the text a scrape gets."""

    def __init__(self, cache_stats: Any = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ragroute_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "ragroute_http_request_duration_seconds",
            "HTTP request latency (whole response, streams included)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge("ragroute_http_requests_in_progress", "Requests being served", registry=r)
        self.node_seconds = Histogram(
            "ragroute_node_duration_seconds",
            "Latency of each graph node run",
            ["node"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.node_errors = Counter(
            "ragroute_node_errors", "Graph node runs that raised", ["node"], registry=r
        )
        self.top_score = Histogram(
            "ragroute_retrieval_top_score",
            "Best hit's score of each search (0 when none)",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.hits = Histogram(
            "ragroute_retrieval_hits", "Hits returned per search", buckets=COUNT_BUCKETS, registry=r
        )
        self.documents = Histogram(
            "ragroute_documents_per_query",
            "Documents kept for the answer after rerank",
            buckets=COUNT_BUCKETS,
            registry=r,
        )
        self.answers = Counter(
            "ragroute_answers", "Answers the graph finished, by route", ["route"], registry=r
        )
        self.abstentions = Counter(
            "ragroute_abstentions",
            'Answers that abstained ("I don\'t know"), by route',
            ["route"],
            registry=r,
        )
        self.tokens = Counter("ragroute_llm_tokens", "LLM tokens used", ["kind"], registry=r)
        self.cost = Counter("ragroute_llm_cost_usd", "Estimated LLM cost in US dollars", registry=r)
        self.degradations = Counter(
            "ragroute_degradations",
            "Provider failures answered by a fallback",
            ["stage", "provider"],
            registry=r,
        )
        self.timeouts = Counter(
            "ragroute_provider_timeouts",
            "Provider calls that timed out (answered by a fallback)",
            ["stage", "provider"],
            registry=r,
        )
        if cache_stats is not None:
            r.register(CacheCollector(cache_stats))

    def render(self) -> bytes:
        """The exposition text of every metric in this registry."""
        return generate_latest(self.registry)

    def observe_node(self, name: str, seconds: float, state: Any, update: Mapping[str, Any] | None) -> None:
        """Record one node run: its latency and what its update says (scores, documents, usage, answer)."""
        self.node_seconds.labels(name).observe(seconds)
        if update is None:
            self.node_errors.labels(name).inc()
            return
        for retrieval in _plain(update.get("retrievals")) or ():
            hits = retrieval.get("hits") or []
            self.hits.observe(len(hits))
            self.top_score.observe(max((float(h.get("score", 0.0)) for h in hits), default=0.0))
        documents = _plain(update.get("documents"))
        if name == "rerank" and documents is not None:
            self.documents.observe(len(documents))
        usage = _plain(update.get("usage")) or {}
        for kind in ("prompt", "completion"):
            if usage.get(f"{kind}_tokens"):
                self.tokens.labels(kind).inc(usage[f"{kind}_tokens"])
        if usage.get("cost_usd"):
            self.cost.inc(usage["cost_usd"])
        if name == "finalize":
            route = str((state or {}).get("route") or "simple")
            self.answers.labels(route).inc()
            if update.get("abstained"):
                self.abstentions.labels(route).inc()

    def degradation(self, where: str, provider: str, timeout: bool) -> None:
        """Record one provider failure answered by a fallback (and whether it was a timeout)."""
        stage = where.split(" ", 1)[0]
        self.degradations.labels(stage, provider).inc()
        if timeout:
            self.timeouts.labels(stage, provider).inc()


def _plain(value: Any) -> Any:
    """The value of a LangGraph Overwrite, else the value itself."""
    return value.value if isinstance(value, Overwrite) else value


def is_timeout(exc: BaseException) -> bool:
    """Whether `exc` or an exception it was raised from is a timeout (SDKs wrap them in their own types)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError) or "Timeout" in type(seen).__name__:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def active() -> Metrics | None:
    """The Metrics this run records into (None: nothing is recorded)."""
    return _ACTIVE.get()


@contextmanager
def recording(metrics: Metrics | None) -> Iterator[None]:
    """Record into `metrics` inside the block (and in every task or thread started from it)."""
    token = _ACTIVE.set(metrics)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def record_node(name: str, seconds: float, state: Any, update: Mapping[str, Any] | None) -> None:
    """One node run into the active Metrics (update None: the node raised)."""
    metrics = _ACTIVE.get()
    if metrics is not None:
        metrics.observe_node(name, seconds, state, update)


def record_degradation(where: str, provider: str, exc: BaseException) -> None:
    """One degradation (caused by `exc`) into the active Metrics."""
    metrics = _ACTIVE.get()
    if metrics is not None:
        metrics.degradation(where, provider, is_timeout(exc))
