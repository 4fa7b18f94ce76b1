"""Browser pages for the API: the X-API-Key scheme in the OpenAPI (Swagger's Authorize button) and a
/login form that keeps a key in a cookie, for pages that cannot send a header (the langserve playground,
the first load of /docs). Swagger UI and ReDoc load from fastapi-offline's files (`create_app` builds
the app with `FastAPIOffline`), so /docs and /redoc work without a CDN.

Why a cookie, and why it is safe enough: the playground is langserve's static React page; its requests
carry no X-API-Key, but a browser sends cookies. POST /login takes the key from a form (never from the
URL, never echoed into a page) and sets `ragroute_api_key` HttpOnly (scripts cannot read it), SameSite=Strict
(no other site's page makes the browser send it) and Secure over https; it lasts the browser session;
GET /logout drops it. `key_from_cookie` (used by the guard) also refuses the cookie on writes the browser
marks as cross-site (Sec-Fetch-Site, Origin), and /login itself refuses cross-site posts (login CSRF).
A header key always wins over the cookie. `form_schema` gives the playground input and config schemas
its forms can draw (no anyOf-with-null)."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection, Mapping
from html import escape
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from pydantic.json_schema import DEFAULT_REF_TEMPLATE, GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

API_KEY_COOKIE = "ragroute_api_key"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
SECURITY_SCHEME = "APIKeyHeader"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

_LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ragroute - log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>body{{font-family:sans-serif;max-width:30rem;margin:4rem auto;padding:0 1rem}}
input,button{{font-size:1rem;padding:.4rem}}input{{width:100%;box-sizing:border-box}}
.error{{color:#b00020}}</style></head>
<body><h1>ragroute</h1>
<p>Enter an API key to use <a href="/docs">/docs</a>, <a href="/redoc">/redoc</a> and
<a href="/ask/playground/">the playground</a> in this browser.</p>
{message}
<form method="post" action="{login}">
<label for="api_key">API key</label>
<p><input id="api_key" name="api_key" type="password" autocomplete="off" required autofocus></p>
<input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button>
</form>
<p><a href="{logout}">Log out</a> (forget the key in this browser)</p>
</body></html>
"""


def _cookie_value(header: str | None) -> str | None:
    """The key cookie's value from a Cookie header, or None."""
    if not header:
        return None
    try:
        cookie = SimpleCookie(header)
    except CookieError:
        return None
    morsel = cookie.get(API_KEY_COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _cross_site(headers: Mapping[str, str]) -> bool:
    """True when the browser says the request comes from another site's page."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    # "null" is what a sandboxed or file: page sends; no same-origin page of ours does
    return origin is not None and urlsplit(origin).netloc != headers.get("host", "")


def key_from_cookie(headers: Mapping[str, str], method: str) -> str | None:
    """The API key a browser keeps in the /login cookie (lower-case `headers`); None on cross-site writes."""
    key = _cookie_value(headers.get("cookie"))
    if key is None or (method.upper() not in SAFE_METHODS and _cross_site(headers)):
        return None
    return key


def login_redirect(method: str, path: str, query: str, headers: Mapping[str, str]) -> str | None:
    """Where to send a browser that opened a page without a key (/login?next=...); None for API calls."""
    if method.upper() != "GET" or headers.get("sec-fetch-mode") != "navigate":
        return None
    target = path + (f"?{query}" if query else "")
    return f"{LOGIN_PATH}?next={quote(target, safe='/')}"


def _safe_next(value: str | None) -> str:
    """A same-site path to go to after logging in (anything else becomes /docs)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/docs"
    return value


def _login_page(next_path: str, message: str = "", status: int = 200) -> HTMLResponse:
    note = f'<p class="error">{escape(message)}</p>' if message else ""
    html = _LOGIN_PAGE.format(message=note, login=LOGIN_PATH, logout=LOGOUT_PATH, next=escape(next_path))
    # the page takes a secret: never cache it, never frame it (clickjacking)
    headers = {"cache-control": "no-store", "x-frame-options": "DENY"}
    return HTMLResponse(html, status_code=status, headers=headers)


def _is_key(keys: Collection[str], presented: str) -> bool:
    """`presented` is one of `keys` (every key compared in constant time)."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(key.encode(), presented.encode())
    return found


class FormJsonSchema(GenerateJsonSchema):
    """JSON schema in which a nullable field shows as its non-null type. langserve's playground draws its
    forms with JSON Forms, which throws "Unknown type: null" on anyOf-with-null and leaves a blank page."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if schema.get("default", ...) is None:  # a null default would fail the form's own validation
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


def form_schema(model: type[Any]) -> type[Any]:
    """`model` whose `model_json_schema()` the playground can draw (FormJsonSchema); it validates exactly
    as `model` does (null included), and the OpenAPI document still says where null is allowed. Anything
    but a pydantic (v2) model comes back as it is."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return model
    base: type[BaseModel] = model  # narrowed, for the closure below

    def model_json_schema(
        cls: type[BaseModel],
        by_alias: bool = True,
        ref_template: str = DEFAULT_REF_TEMPLATE,
        schema_generator: type[GenerateJsonSchema] = FormJsonSchema,
        mode: JsonSchemaMode = "validation",
    ) -> dict[str, Any]:
        # `base`'s own method, not super(): langchain's root models call super(cls, cls) themselves
        return base.model_json_schema(
            by_alias=by_alias, ref_template=ref_template, schema_generator=schema_generator, mode=mode
        )

    namespace = {"model_json_schema": classmethod(model_json_schema), "__module__": base.__module__}
    form: type[BaseModel] = type(base.__name__, (base,), namespace)
    return form


def _add_login_routes(app: FastAPI, keys: Collection[str]) -> None:
    """GET/POST /login (the key form that sets the cookie) and GET /logout (drops it)."""

    @app.get(LOGIN_PATH, include_in_schema=False)
    async def login_form(next: str | None = None) -> HTMLResponse:  # noqa: A002 - the query name
        return _login_page(_safe_next(next))

    @app.post(LOGIN_PATH, include_in_schema=False)
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        next_path = _safe_next(form.get("next", [""])[0])
        if _cross_site({k.lower(): v for k, v in request.headers.items()}):
            return _login_page(next_path, "log in from this server's own page", 403)
        presented = (form.get("api_key") or [""])[0].strip()
        if not presented or not _is_key(keys, presented):
            return _login_page(next_path, "that API key is not valid", 401)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            API_KEY_COOKIE,
            presented,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @app.get(LOGOUT_PATH, include_in_schema=False)
    async def logout() -> Response:
        response = RedirectResponse(LOGIN_PATH, status_code=303)
        response.delete_cookie(API_KEY_COOKIE, path="/", httponly=True, samesite="strict")
        return response


def _with_key_scheme(
    openapi: Callable[[], dict[str, Any]], required: bool, public_paths: Collection[str]
) -> Callable[[], dict[str, Any]]:
    """`app.openapi` that also declares the X-API-Key header scheme (Swagger's Authorize button)."""

    def schema() -> dict[str, Any]:
        doc = openapi()  # FastAPI caches the document; adding the scheme twice changes nothing
        schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[SECURITY_SCHEME] = {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key from the server's key file; browsers may log in at /login instead.",
        }
        # {} in the list makes the key optional: a server without keys serves everyone as anonymous
        doc["security"] = [{SECURITY_SCHEME: []}] if required else [{SECURITY_SCHEME: []}, {}]
        for path in public_paths:
            for operation in doc.get("paths", {}).get(path, {}).values():
                operation["security"] = []
        return doc

    return schema


def add_api_pages(app: FastAPI, keys: Collection[str], public_paths: Collection[str] = ()) -> None:
    """Declare the X-API-Key scheme in the OpenAPI and, when the server has `keys`, add /login and /logout.
    `public_paths`: routes the guard lets in without a key (their operations need no key)."""
    app.openapi = _with_key_scheme(app.openapi, bool(keys), public_paths)  # type: ignore[method-assign]
    if keys:
        _add_login_routes(app, keys)
