"""One validation of run settings everywhere: unknown Context keys are a one-line ConfigError naming the key
and the options (Context(**dict) as LangGraph builds it, from_dict, ask(context=...), the server's
configurable -> 422); an unknown LLM provider fails before a run; the default scope is public-only."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.runtime import Runtime
from ragroute.api import ask
from ragroute.context import Context, check_llm_provider, context_of
from ragroute.runtime import providers
from ragroute.runtime.scope import access_of
from ragroute.server.auth import Identity
from ragroute.server.policy import server_configurable
from ragroute.server.state import ServerSettings
from ragroute.tools.errors import ConfigError, ProviderError
from ragroute.tools.types import AccessScope
from ragroute.workflow import graph


def one_line_naming(err: pytest.ExceptionInfo[BaseException], *needles: str) -> None:
    text = str(err.value)
    assert len(text.splitlines()) == 1, text
    for needle in needles:
        assert needle in text, text


@pytest.mark.parametrize(
    "build",
    [
        lambda v: Context(**v),  # how LangGraph coerces a context dict
        lambda v: Context.from_dict(v),
        lambda v: context_of(Runtime(context=v)),  # a dict on the Runtime (Studio-style context)
        lambda v: context_of(v),  # the context's own fields as a dict
    ],
)
def test_unknown_context_key_is_a_config_error_naming_it_and_the_options(build: Any) -> None:
    with pytest.raises(ConfigError) as err:
        build({"k_simple": 2, "top_k": 3})
    one_line_naming(err, "'top_k'", "options:", "k_simple", "user_groups", "all_access")


def test_a_near_miss_says_which_field_was_meant() -> None:
    with pytest.raises(ConfigError) as err:
        Context(k_simpel=2)  # type: ignore[call-arg]
    one_line_naming(err, "'k_simpel' (did you mean 'k_simple'?)")


def test_graph_invoke_with_a_bad_context_dict_raises_config_error_not_type_error() -> None:
    with pytest.raises(ConfigError) as err:
        graph.invoke({"question": "anything"}, context={"bogus": 1})
    one_line_naming(err, "'bogus'", "options:")


def test_configurable_ignores_langgraph_and_parent_keys_but_not_typos_of_ours() -> None:
    shared = {
        "thread_id": "t",
        "checkpoint_ns": "",
        "__pregel_x": 1,
        "langgraph_request_id": "r",
        "model": "m",
    }
    assert context_of({"configurable": {**shared, "k_simple": 2}}).k_simple == 2
    with pytest.raises(ConfigError) as err:
        context_of({"configurable": {**shared, "rerankr": "none"}})
    one_line_naming(err, "did you mean 'reranker'")


def test_ask_accepts_a_context_dict_or_object_and_rejects_bad_ones(make_index: Any) -> None:
    index = make_index()
    path = str(index.path)
    index.close()
    question = "How long do access tokens last?"
    by_dict = ask(question, context={"index_dir": path, "reranker": "none"})
    by_object = ask(question, context=Context(index_dir=path, reranker="none"))
    assert "15 minutes" in by_dict["answer"] and by_dict["answer"] == by_object["answer"]
    with pytest.raises(ConfigError) as err:
        ask(question, context={"index_dir": path, "bogus": True})
    one_line_naming(err, "'bogus'")
    with pytest.raises(ConfigError, match="context must be a Context or a dict"):
        ask(question, context=42)  # type: ignore[arg-type]


def test_unknown_llm_provider_fails_before_the_run_and_lists_providers() -> None:
    with pytest.raises(ConfigError) as err:
        ask("anything", llm="nope:model", index_dir="/does/not/matter")
    one_line_naming(err, "unknown provider 'nope'", "openai", "anthropic", "OPENAI_BASE_URL")
    check_llm_provider("openai:any-local-name")  # a known provider passes, whatever the model name


def test_a_known_provider_that_cannot_be_set_up_is_a_provider_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("langchain_openai")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ProviderError) as err:
        providers.chat_model("openai:gpt-4o-mini-no-key")
    one_line_naming(err, "cannot be set up", "OPENAI_API_KEY")


# ------------------------------------------------------------------------------------- default scope


def test_default_scope_is_public_only_and_everything_needs_all_access() -> None:
    assert access_of(Context()) == AccessScope(groups=[], clearance=0)
    assert access_of(Context(user_groups=["ops"])) == AccessScope(groups=["ops"], clearance=0)
    assert access_of(Context(all_access=True)) is None
    with pytest.raises(ConfigError, match="all_access=True"):
        Context(all_access=True, user_groups=["ops"])


def test_ask_without_groups_never_sees_restricted_documents(make_index: Any, tiny_corpus: Any) -> None:
    secret = ("vault", "Vault runbook", "The vault failover passphrase is kept by the duty officer.", {})
    secret[3].update({"access_groups": ["ops"], "security_level": 2})
    index = make_index([*tiny_corpus, secret])
    path = str(index.path)
    index.close()
    question = "Who keeps the vault failover passphrase?"
    seen = {
        name: {c.split("::")[0] for c in out["retrieved"]}
        for name, out in {
            "default": ask(question, index_dir=path, reranker="none", cache=False),
            "all": ask(question, index_dir=path, reranker="none", cache=False, all_access=True),
            "ops": ask(
                question, index_dir=path, reranker="none", cache=False, user_groups=["ops"], clearance=2
            ),
        }.items()
    }
    assert "vault" not in seen["default"] and seen["default"]  # public documents still answer
    assert "vault" in seen["all"] and "vault" in seen["ops"]


# ------------------------------------------------------------------------------------- server


def test_server_configurable_rejects_unknown_keys_and_forces_the_scope_flag() -> None:
    settings = ServerSettings(index_dir="/srv/index")
    reader = Identity(user="rita", groups=("eng",), clearance=1)
    with pytest.raises(ConfigError) as err:
        server_configurable({"k_simple": 2, "bogus": 1}, reader, settings)
    one_line_naming(err, "'bogus'", "options:")
    # a restricted key asking for everything gets its own scope; an unrestricted one gets all_access
    widened = server_configurable({"all_access": True}, reader, settings)
    assert widened["all_access"] is False and widened["user_groups"] == ["eng"]
    assert access_of(Context.from_dict(widened)) == AccessScope(groups=["eng"], clearance=1)
    admin = server_configurable({}, Identity(user="svc", unrestricted=True), settings)
    assert access_of(Context.from_dict(admin)) is None


async def test_the_http_api_answers_an_unknown_configurable_key_with_422_and_never_widens(
    make_index: Any,
) -> None:
    httpx = pytest.importorskip("httpx")
    from ragroute.server.app import create_app

    index = make_index()
    keys = {"reader-key-0001": {"user": "rita", "groups": ["eng"], "clearance": 1}}
    app = create_app(index.path, keys, index=index, tracing=False)
    headers = {"X-API-Key": "reader-key-0001"}
    body: dict[str, Any] = {"input": {"question": "When are engineering salary bands reviewed?"}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        bad = await client.post(
            "/ask/invoke", json={**body, "config": {"configurable": {"top_k": 3}}}, headers=headers
        )
        assert bad.status_code == 422, bad.text
        assert "'top_k'" in bad.json()["detail"] and "options:" in bad.json()["detail"]
        wide = await client.post(
            "/ask/invoke", json={**body, "config": {"configurable": {"all_access": True}}}, headers=headers
        )
        assert wide.status_code == 200, wide.text
        out = wide.json()["output"]
        assert "salary" not in {c.split("::")[0] for c in out["retrieved"] + out["contexts"]}
