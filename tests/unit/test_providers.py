"""ragroute.runtime.providers: objects bound with `using` are served instead of the ones built from strings,
only inside the binding; a bound object gets a circuit of its own."""

from __future__ import annotations

import asyncio

import pytest
from ragroute.context import Context
from ragroute.runtime import providers
from ragroute.runtime.providers import Providers, using
from ragroute.tools.rerankers import NoReranker

from tests.node_fakes import FakeIndex, ScriptedChatModel


def test_providers_is_frozen_and_empty_by_default() -> None:
    empty = Providers()
    assert (empty.index, empty.chat_model, empty.reranker) == (None, None, None)
    with pytest.raises(AttributeError):
        empty.index = FakeIndex([])  # type: ignore[misc]


def test_using_binds_inside_only_nests_and_none_keeps_the_outer_binding(tmp_path) -> None:
    outer, inner = FakeIndex([]), FakeIndex([])
    ctx = Context(index_dir=str(tmp_path / "missing"))
    assert providers.current() is None
    with using(Providers(index=outer)):
        assert providers.index(ctx) is outer
        with using(None):
            assert providers.index(ctx) is outer
        with using(Providers(index=inner)):
            assert providers.index(ctx) is inner
        assert providers.index(ctx) is outer
    assert providers.current() is None


def test_bound_chat_model_is_served_for_any_spec_and_only_while_bound() -> None:
    model = ScriptedChatModel(script=[])
    with using(Providers(chat_model=model)):
        assert providers.chat_model("fake:anything") is model
        assert providers.chat_model("openai:gpt-4o-mini") is model
    assert providers.current() is None


async def test_bindings_of_concurrent_tasks_do_not_mix() -> None:
    async def bound_reranker(reranker: NoReranker) -> NoReranker:
        with using(Providers(reranker=reranker)):
            await asyncio.sleep(0.01)  # the other task binds its own meanwhile
            return providers.reranker("local")  # type: ignore[return-value]

    one, two = NoReranker(), NoReranker()
    assert await asyncio.gather(bound_reranker(one), bound_reranker(two)) == [one, two]


def test_a_bound_object_gets_a_circuit_of_its_own() -> None:
    model = ScriptedChatModel(script=[])
    assert providers.breaker_name("llm", "fake:x", model) == "llm:fake:x"  # not bound: the spec's circuit
    with using(Providers(chat_model=model)):
        name = providers.breaker_name("llm", "fake:x", model)
        assert name.startswith("llm:fake:x@") and providers.breaker(name) is not providers.breaker(
            "llm:fake:x"
        )
