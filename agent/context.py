"""Run-scoped knobs of the query graph (LangGraph `context_schema`), validated on construction."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ragroute.tools.errors import ConfigError, value_problem
from ragroute.tools.hybrid import validate_weights
from ragroute.tools.location import default_location

RERANKERS = ("auto", "none", "cohere", "local", "maxsim", "ltr")
ROUTE_CHOICES = ("auto", "simple", "expand", "multihop")
_OFF = ("0", "false", "no", "off")


@dataclass
class Context:
    """Providers, bounds, budgets and access scope for one graph run. JSON-typed fields only."""

    index_dir: str | None = None  # folder or Milvus URL; None: env RAGROUTE_INDEX(_DIR) or ~/.ragroute/index
    llm: str | None = None  # None: offline extractive generator; else "provider:model" for init_chat_model
    reranker: str = "auto"  # auto|none|cohere|local|maxsim|ltr|cross-encoder:/path/to/model
    route: str = "auto"  # force a route (benchmarks, debugging) instead of classifying
    k_simple: int = 3
    k_expand: int = 10
    k_multihop: int = 20
    candidate_k: int = 30  # how wide to retrieve before reranking
    rerank_depth: int = 10  # how many of the fused candidates the reranker reorders (latency bound)
    token_budget: int = 2000
    rrf_k: int = 60
    weights: dict[str, float] | None = None  # {"dense": w, "bm25": w}; None: index defaults
    filters: dict[str, Any] | None = None  # Mongo-style metadata filter applied to every retrieval
    # the caller's access scope: ACL groups and clearance; neither set means public documents only (those
    # without access_groups and with security_level 0); every document needs the explicit all_access=True
    user_groups: list[str] | None = None
    clearance: int | None = None
    all_access: bool = False
    freshness_half_life_days: dict[str, float] | None = None  # per doc_type ("*" = default); None: off
    stale_after_days: int = 365  # mention dates of sources older than this
    faithfulness_threshold: float = 0.5
    # extractive generator abstains when the answerability model's P(answerable) is below this
    # (tools/answerability.py; the shipped model's threshold, chosen by cross-validation on ClapNQ dev)
    answer_threshold: float = 0.5
    max_retries: int = 1
    max_subquestions: int = 4
    num_variants: int = 3
    reranker_timeout_s: float = 10.0
    llm_timeout_s: float = 60.0
    strict: bool = False  # raise provider failures instead of degrading
    # retrieval + response caches (agent/runtime/caching.py), keyed by scope and index version;
    # RAGROUTE_CACHE=0: off
    cache: bool = field(default_factory=lambda: os.environ.get("RAGROUTE_CACHE", "1").lower() not in _OFF)
    cache_ttl_s: float = 600.0  # how long a cached answer is served
    prefer_latest_version: bool = True  # drop older versions of a document family unless asked for
    redact_query_pii: bool = False  # replace PII in the question before retrieval, models and traces
    # the learned router's file (ragroute train-router); None: $RAGROUTE_ROUTER_MODEL, else the shipped one
    router_model: str | None = field(default_factory=lambda: os.environ.get("RAGROUTE_ROUTER_MODEL") or None)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, ignored by the graph

    def __new__(cls, *args: Any, **kwargs: Any) -> Context:
        # LangGraph builds the context from a dict as Context(**values): an unknown key must be a
        # ConfigError naming it, not the TypeError of the generated __init__
        cls.check_keys(kwargs)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        for name in (
            "k_simple",
            "k_expand",
            "k_multihop",
            "candidate_k",
            "rerank_depth",
            "token_budget",
            "rrf_k",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        if not self.k_simple <= self.k_expand <= self.k_multihop:
            raise ConfigError(
                f"k bounds must grow with complexity: k_simple={self.k_simple} <= k_expand={self.k_expand}"
                f" <= k_multihop={self.k_multihop}"
            )
        if self.candidate_k < self.k_simple:
            raise ConfigError(f"candidate_k={self.candidate_k} must be >= k_simple={self.k_simple}")
        if self.route not in ROUTE_CHOICES:
            raise ConfigError(f"route={self.route!r} is unknown; options: {list(ROUTE_CHOICES)}")
        if not (self.reranker in RERANKERS or self.reranker.startswith("cross-encoder:")):
            raise ConfigError(
                f"reranker={self.reranker!r} is unknown; options: {list(RERANKERS)} or 'cross-encoder:/path'"
            )
        if self.llm is not None and (not isinstance(self.llm, str) or ":" not in self.llm):
            raise ConfigError(f"llm={self.llm!r} must look like 'provider:model' (e.g. 'openai:gpt-4o-mini')")
        if not 0.0 <= float(self.faithfulness_threshold) <= 1.0:
            raise ConfigError(f"faithfulness_threshold={self.faithfulness_threshold!r} must be in [0, 1]")
        if not 0.0 <= float(self.answer_threshold) <= 1.0:
            raise ConfigError(f"answer_threshold={self.answer_threshold!r} must be in [0, 1]")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(f"max_retries={self.max_retries!r} must be an integer >= 0")
        if self.weights is not None:
            validate_weights(self.weights, what="weights")
        if self.filters is not None and not isinstance(self.filters, dict):
            raise ConfigError(f"filters={reprlib.repr(self.filters)} must be a JSON object")
        if self.user_groups is not None and (
            not isinstance(self.user_groups, list) or not all(isinstance(g, str) for g in self.user_groups)
        ):
            raise ConfigError(f"user_groups={reprlib.repr(self.user_groups)} must be a list of group names")
        if self.clearance is not None and (
            isinstance(self.clearance, bool) or not isinstance(self.clearance, int)
        ):
            raise ConfigError(f"clearance={self.clearance!r} must be an integer")
        problem = value_problem(self.extra, "extra")  # it is hashed into the response cache's key
        if problem:
            raise ConfigError(problem)
        for name in ("cache", "prefer_latest_version", "redact_query_pii", "all_access"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r} must be true or false")
        if self.all_access and (self.user_groups is not None or self.clearance is not None):
            raise ConfigError(
                "all_access=True reads every document; it cannot be combined with"
                f" user_groups={self.user_groups!r} / clearance={self.clearance!r}"
            )
        if (
            isinstance(self.cache_ttl_s, bool)
            or not isinstance(self.cache_ttl_s, int | float)
            or not (self.cache_ttl_s > 0)
        ):
            raise ConfigError(f"cache_ttl_s={self.cache_ttl_s!r} must be a number of seconds > 0")
        if self.router_model is not None:
            if not isinstance(self.router_model, str) or not self.router_model.strip():
                raise ConfigError(f"router_model={self.router_model!r} must be a router model file's path")
            from ragroute.tools.router_model import load_router  # numpy; read once per file version

            load_router(self.router_model)
        if self.freshness_half_life_days is not None:
            if not isinstance(self.freshness_half_life_days, dict) or any(
                float(v) <= 0 for v in self.freshness_half_life_days.values()
            ):
                raise ConfigError(
                    f"freshness_half_life_days={self.freshness_half_life_days!r}"
                    " must map doc_type -> days > 0"
                )

    @property
    def resolved_index_dir(self) -> str:
        """The index directory this run uses."""
        return (  # a folder, or a Milvus URL (milvus://HOST:PORT/NAME, milvus:///FILE.db)
            self.index_dir or default_location()
        )

    def k_for(self, route: str) -> int:
        """Upper bound on context chunks for a route."""
        return {"simple": self.k_simple, "expand": self.k_expand}.get(route, self.k_multihop)

    @classmethod
    def field_names(cls) -> set[str]:
        """Names of all knobs."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def check_keys(cls, values: Mapping[str, Any]) -> None:
        """Raise ConfigError naming every key of `values` that is not a Context field, with the options."""
        names = cls.field_names()
        unknown = sorted(str(k) for k in values if k not in names)
        if not unknown:
            return
        named = [
            f"{k!r}" + (f" (did you mean {m[0]!r}?)" if (m := _close_field(k, names)) else "")
            for k in unknown
        ]
        raise ConfigError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(named)};"
            f" options: {', '.join(sorted(names))}"
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, *, ignore_unknown: bool = False) -> Context:
        """Build from a JSON dict; unknown keys are a ConfigError unless `ignore_unknown`."""
        values = dict(values or {})
        if not ignore_unknown:
            cls.check_keys(values)
        return cls(**{k: v for k, v in values.items() if k in cls.field_names()})

    @classmethod
    def from_configurable(cls, configurable: Mapping[str, Any] | None) -> Context:
        """Build from `config["configurable"]`, a namespace LangGraph, its server and a parent graph share:
        their keys are ignored, but a near miss of a Context field ("k_simpel") is a ConfigError."""
        values = dict(configurable or {})
        names = cls.field_names()
        typos = {k: v for k, v in values.items() if k not in names and _close_field(k, names)}
        cls.check_keys(typos)
        return cls(**{k: v for k, v in values.items() if k in names})


def check_llm_provider(spec: str | None) -> None:
    """Raise ConfigError when the "provider:model" `spec` names a provider LangChain's init_chat_model does
    not know. Not part of Context validation: a run with a bound chat model (Providers) may name it freely."""
    if spec is None:
        return
    provider = spec.partition(":")[0]
    known = llm_providers()
    if known and provider not in known:
        raise ConfigError(
            f"llm={spec!r}: unknown provider {provider!r}; options: {', '.join(known)}"
            " (a local OpenAI-compatible server: 'openai:MODEL' with OPENAI_BASE_URL)"
        )


_RUNNABLE_CONFIG_KEYS = frozenset(
    (
        "configurable",
        "callbacks",
        "tags",
        "metadata",
        "run_name",
        "run_id",
        "recursion_limit",
        "max_concurrency",
    )
)


def _close_field(key: str, names: set[str]) -> list[str]:
    return difflib.get_close_matches(str(key), sorted(names), n=1, cutoff=0.8)


@functools.cache
def llm_providers() -> tuple[str, ...]:
    """The provider prefixes LangChain's init_chat_model accepts (empty when it does not list them)."""
    from langchain.chat_models import base  # third party, loaded on first use: ~0.5 s

    known = getattr(base, "_BUILTIN_PROVIDERS", None)  # private: checked, never relied on
    return tuple(sorted(known)) if isinstance(known, dict) else ()


def context_of(runtime_or_config: Any = None) -> Context:
    """The run's Context: from `Runtime.context`, a context dict, or `config["configurable"]` (langserve).

    On the LangGraph Agent Server with custom auth, the authenticated user's access replaces the
    context's (`authenticated_access`), so a client can never widen what it reads."""
    source = runtime_or_config
    if isinstance(source, dict) and _RUNNABLE_CONFIG_KEYS.intersection(source):
        configurable = source.get("configurable") or {}
        return _with_auth_access(Context.from_configurable(configurable), configurable)
    try:
        from langgraph.config import get_config

        configurable = get_config().get("configurable") or {}
    except RuntimeError:  # called outside a graph run
        configurable = {}
    ctx = getattr(source, "context", None) if source is not None and not isinstance(source, dict) else None
    if isinstance(ctx, Context):
        pass
    elif isinstance(ctx, dict):
        ctx = Context.from_dict(ctx)
    elif isinstance(source, Context):
        ctx = source
    elif isinstance(source, dict):  # the context's own fields
        ctx = Context.from_dict(source)
    else:
        ctx = Context.from_configurable(configurable)
    return _with_auth_access(ctx, configurable)


ACCESS_FIELDS = ("user_groups", "clearance", "all_access")


def authenticated_access(configurable: Mapping[str, Any]) -> dict[str, Any] | None:
    """The access fields of the user the LangGraph Agent Server authenticated for this run, or None when it
    authenticated nobody. A user without valid fields (a Studio user, another auth) reads public only."""
    user = configurable.get("langgraph_auth_user")
    if not user:
        return None
    get = user.get if hasattr(user, "get") else lambda k: getattr(user, k, None)
    groups, clearance, everything = (get(k) for k in ACCESS_FIELDS)
    if everything is True:
        return {"user_groups": None, "clearance": None, "all_access": True}
    if isinstance(groups, list | tuple) and all(isinstance(g, str) for g in groups):
        groups = list(groups)
    else:
        groups = None
    if isinstance(clearance, bool) or not isinstance(clearance, int):
        clearance = None
    return {"user_groups": groups, "clearance": clearance, "all_access": False}


def _with_auth_access(ctx: Context, configurable: Mapping[str, Any]) -> Context:
    access = authenticated_access(configurable)
    if access is None or all(getattr(ctx, k) == v for k, v in access.items()):
        return ctx
    return dataclasses.replace(ctx, **access)
