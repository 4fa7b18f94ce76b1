"""OpenAI-compatible routes: POST /v1/chat/completions answers the chat's last user message with citations,
GET /v1/models lists the one model, so any OpenAI client or chat UI can talk to ragroute.

A completion runs exactly like /ask/invoke: the caller the guard let in (X-API-Key, or the OpenAI clients'
`Authorization: Bearer KEY`), `server_configurable` for its scope, and the response cache. Errors have
OpenAI's shape, {"error": {"message", "type", "param", "code"}}, so clients raise their usual exceptions.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ragroute.server.answers import SESSION_HEADER, run_config
from ragroute.server.guard import identity_of, openai_error
from ragroute.server.policy import check_question_input
from ragroute.server.state import IndexHolder, ServerSettings
from ragroute.tools.errors import ConfigError, InputError, ProviderError, RagrouteError, printable

MODEL_ID = "ragroute"
# OpenAI request fields a client may send and ragroute ignores: the answer comes from the sources, not
# from sampling, so these change nothing (rejecting them would break every stock client)
IGNORED_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "stop",
        "seed",
        "user",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "stream_options",
        "metadata",
        "store",
        "service_tier",
        "parallel_tool_calls",
        "reasoning_effort",
        "verbosity",
        "safety_identifier",
        "prompt_cache_key",
    }
)
_WORDS = re.compile(r"\S+\s*|\s+")
_WORDS_PER_CHUNK = 4


class TextPart(BaseModel):
    """One part of a message's content; only text parts carry a question here."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One chat turn (name, tool_calls and the like are allowed and ignored)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None


class ChatRequest(BaseModel):
    """The body of POST /v1/chat/completions; `filters` is ragroute's own (a metadata filter)."""

    model_config = ConfigDict(extra="allow")  # the ignored OpenAI params; anything else is refused below

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    stream: bool | None = False
    n: int | None = 1
    filters: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    response_format: dict[str, Any] | None = None


class ApiError(Exception):
    """A request this API refuses, with its HTTP status and OpenAI error fields."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def error_response(status: int, message: str, param: str | None = None, code: str | None = None) -> Response:
    """An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}."""
    return JSONResponse({"error": openai_error(status, printable(message), param, code)}, status_code=status)


def _text_of(message: ChatMessage, where: str) -> str:
    """A message's text: the string, or its text parts joined; other part types are refused."""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for i, part in enumerate(message.content or []):
        if part.type != "text" or part.text is None:
            refusal = f"{where}.content[{i}]: only text parts are supported, got {part.type!r}"
            raise ApiError(422, refusal, where)
        texts.append(part.text)
    return "\n".join(texts)


def parse_request(body: Any, max_chars: int) -> tuple[ChatRequest, dict[str, Any]]:
    """The validated request and the graph input it asks: {"question": last user message, "filters"}.

    Only the last user message is asked. Earlier turns (and system prompts) are not used yet: the graph
    answers one standalone question, so a follow-up that leans on earlier turns should be asked in full."""
    if not isinstance(body, dict):
        raise ApiError(422, "body must be a JSON object with a messages list")
    unknown = sorted(set(body) - set(ChatRequest.model_fields) - IGNORED_PARAMS)
    if unknown:
        raise ApiError(422, f"unsupported parameter(s) {unknown}", unknown[0], "unsupported_parameter")
    try:
        req = ChatRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        raise ApiError(422, f"{loc}: {err['msg']}" if loc else err["msg"], loc or None) from None
    if req.n not in (None, 1):
        raise ApiError(422, f"n={req.n}: ragroute gives one answer per request (n=1)", "n")
    if req.tools or req.functions or req.tool_choice not in (None, "none") or req.function_call:
        raise ApiError(422, "ragroute does not call tools; send messages only", "tools")
    if req.response_format and req.response_format.get("type") != "text":
        raise ApiError(422, "response_format: ragroute answers in text only", "response_format")
    users = [i for i, m in enumerate(req.messages) if m.role == "user"]
    if not users:
        raise ApiError(422, "messages has no user message to answer", "messages")
    where = f"messages[{users[-1]}]"
    question = _text_of(req.messages[users[-1]], where)
    if not question.strip():
        raise ApiError(422, f"{where}.content is empty", where)
    inputs: dict[str, Any] = {"question": question.strip()}
    if req.filters is not None:
        inputs["filters"] = req.filters
    try:
        check_question_input(inputs, max_chars, where)  # the length limit and filters of /ask
    except InputError as exc:  # it names the graph's field; the caller sent it as the message's content
        raise ApiError(422, str(exc).replace(f"{where}.question", f"{where}.content"), where) from None
    return req, inputs


def render(output: dict[str, Any]) -> str:
    """The answer as chat text: the answer, then its numbered sources ("[1] title (doc_id)")."""
    answer = (output.get("answer") or "").strip()
    sources = [
        f"[{c.get('n')}] {c.get('title') or c.get('doc_id')} ({c.get('doc_id')})"
        for c in output.get("citations") or []
    ]
    return f"{answer}\n\nSources:\n" + "\n".join(sources) if sources else answer


def extra_fields(output: dict[str, Any]) -> dict[str, Any]:
    """ragroute's own fields beside the OpenAI ones: the structured citations, how far to trust them, and
    the answer's id (POST /feedback rates it)."""
    keys = ("answer_id", "citations", "confidence", "faithfulness", "abstained", "route")
    return {key: output.get(key) for key in keys}


def _completion(output: dict[str, Any], model: str) -> dict[str, Any]:
    """A `chat.completion` object for `output` (plus the non-standard `ragroute` field)."""
    message = {"role": "assistant", "content": render(output), "refusal": None}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": None,
        "ragroute": extra_fields(output),
    }


async def _chunks(output: dict[str, Any], model: str) -> AsyncIterator[str]:
    """Server-sent `chat.completion.chunk` events for a finished answer, a few words each, then [DONE]."""
    base: dict[str, Any] = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk"}
    base.update(created=int(time.time()), model=model)

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return f"data: {json.dumps({**base, 'choices': [choice], **extra})}\n\n"

    yield event({"role": "assistant", "content": ""})
    words = _WORDS.findall(render(output))
    for start in range(0, len(words), _WORDS_PER_CHUNK):
        yield event({"content": "".join(words[start : start + _WORDS_PER_CHUNK])})
    yield event({}, "stop", ragroute=extra_fields(output))
    yield "data: [DONE]\n\n"


def add_openai_routes(app: FastAPI, answers: Any, holder: IndexHolder, settings: ServerSettings) -> None:
    """Add POST /v1/chat/completions, GET /v1/models and GET /v1/models/{model} to `app`; completions run
    `answers` (server.answers.answer_runnable), the runnable /ask/invoke serves."""

    async def run(request: Request, inputs: dict[str, Any]) -> dict[str, Any]:
        config = run_config(None, identity_of(request), settings, request.headers.get(SESSION_HEADER))
        await asyncio.to_thread(holder.get)  # opened off the event loop before the graph searches it
        return dict(await answers.ainvoke(inputs, config))

    @app.post("/v1/chat/completions", tags=["openai"])
    async def chat_completions(request: Request) -> Response:
        """OpenAI chat completion: the last user message answered with its sources (stream=true: SSE)."""
        try:
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "request body is not valid JSON") from None
            req, inputs = parse_request(body, settings.max_question_chars)
            output = await run(request, inputs)
        except ApiError as exc:
            return error_response(exc.status, str(exc), exc.param, exc.code)
        except (InputError, ConfigError) as exc:
            return error_response(422, str(exc))
        except ProviderError as exc:
            return error_response(502, str(exc))
        except RagrouteError as exc:
            return error_response(400, str(exc))
        model = req.model or MODEL_ID
        if req.stream:
            return StreamingResponse(_chunks(output, model), media_type="text/event-stream")
        return JSONResponse(_completion(output, model))

    def model_card() -> dict[str, Any]:
        return {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "ragroute"}

    @app.get("/v1/models", tags=["openai"])
    async def list_models(request: Request) -> dict[str, Any]:
        """OpenAI model list: the one model, "ragroute" (any model name is accepted by completions)."""
        identity_of(request)
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model}", tags=["openai"])
    async def get_model(model: str, request: Request) -> Response:
        """One OpenAI model card ("ragroute"; any other name: 404)."""
        identity_of(request)
        if model != MODEL_ID:
            return error_response(404, f"model {model!r} not found; this server has {MODEL_ID!r}", "model")
        return JSONResponse(model_card())
