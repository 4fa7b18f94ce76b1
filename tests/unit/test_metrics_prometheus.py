"""runtime.metrics: what `steps.timed` and `steps.degrade` record into the active Metrics (tokens, cost,
degradations by provider, timeouts, node errors), nothing without one, and one registry per Metrics."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families
from ragroute.context import Context
from ragroute.runtime import metrics as m
from ragroute.runtime.steps import degrade, timed
from ragroute.tools.errors import ProviderError


def scrape(metrics: m.Metrics) -> dict[tuple[str, frozenset], float]:
    text = metrics.render().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in scraped.items() if n == name and want <= lab)


@timed("generate")
async def _generate(state: dict, runtime: object) -> dict:
    return {"usage": {"prompt_tokens": 120, "completion_tokens": 30, "cost_usd": 0.002}}


@timed("finalize")
async def _finalize(state: dict, runtime: object) -> dict:
    return {"abstained": state["abstain"]}


@timed("rerank")
async def _broken(state: dict, runtime: object) -> dict:
    raise RuntimeError("boom")


def test_timed_nodes_record_latency_usage_and_abstentions() -> None:
    metrics = m.Metrics()
    with m.recording(metrics):
        asyncio.run(_generate({}, None))
        asyncio.run(_generate({}, None))
        asyncio.run(_finalize({"route": "expand", "abstain": True}, None))
        asyncio.run(_finalize({"route": "simple", "abstain": False}, None))
        with pytest.raises(RuntimeError):
            asyncio.run(_broken({}, None))
    got = scrape(metrics)
    assert value(got, "ragroute_llm_tokens_total", kind="prompt") == 240
    assert value(got, "ragroute_llm_tokens_total", kind="completion") == 60
    assert value(got, "ragroute_llm_cost_usd_total") == pytest.approx(0.004)
    assert value(got, "ragroute_node_duration_seconds_count", node="generate") == 2
    assert value(got, "ragroute_answers_total") == 2
    assert value(got, "ragroute_abstentions_total", route="expand") == 1
    assert value(got, "ragroute_abstentions_total", route="simple") == 0
    assert value(got, "ragroute_node_errors_total", node="rerank") == 1


def test_degradations_by_provider_and_timeouts() -> None:
    metrics = m.Metrics()
    ctx = Context(llm="openai:gpt-4o-mini", reranker="cohere")
    try:
        raise TimeoutError("slow")
    except TimeoutError as exc:
        try:
            raise ProviderError("openai:gpt-4o-mini", "no answer within 30s") from exc
        except ProviderError as wrapped:
            timeout = wrapped
    with m.recording(metrics):
        degrade(ctx, "generate", timeout)
        degrade(ctx, "rerank (cohere)", ValueError("bad reply"))
        degrade(ctx, "prune.parents", OSError("disk"))
        with pytest.raises(ProviderError):  # strict: the failure is raised, and still counted
            degrade(Context(llm="openai:gpt-4o-mini", strict=True), "verify", timeout)
    got = scrape(metrics)
    assert value(got, "ragroute_degradations_total", stage="generate", provider="openai:gpt-4o-mini") == 1
    assert value(got, "ragroute_degradations_total", stage="rerank", provider="cohere") == 1
    assert value(got, "ragroute_degradations_total", stage="prune.parents", provider="index") == 1
    assert value(got, "ragroute_provider_timeouts_total") == 2  # generate and verify, not rerank's ValueError
    assert value(got, "ragroute_provider_timeouts_total", stage="verify") == 1


def test_nothing_recorded_without_active_metrics_and_registries_are_separate() -> None:
    a, b = m.Metrics(), m.Metrics()
    asyncio.run(_generate({}, None))  # no active Metrics: a no-op
    with m.recording(a):
        asyncio.run(_generate({}, None))
    assert value(scrape(a), "ragroute_node_duration_seconds_count") == 1
    assert value(scrape(b), "ragroute_node_duration_seconds_count") == 0
    assert m.active() is None


def test_cache_levels_are_read_at_scrape_time() -> None:
    stats = {
        "responses": {"hits": 3, "misses": 5, "size": 4},
        "embeddings": {"hits": 0, "misses": 1, "size": 1},
    }
    got = scrape(m.Metrics(cache_stats=lambda: stats))
    assert value(got, "ragroute_cache_hits_total", level="responses") == 3
    assert value(got, "ragroute_cache_misses_total", level="responses") == 5
    assert value(got, "ragroute_cache_entries", level="embeddings") == 1
    stats["responses"]["hits"] = 4
    assert (
        value(scrape(m.Metrics(cache_stats=lambda: stats)), "ragroute_cache_hits_total", level="responses")
        == 4
    )
