"""/docs, /redoc and the langserve playground in a real headless Chromium (Debian's, driven by Playwright):
they render with every request outside the server blocked (no CDN), a browser gets in with an API key
(the /login cookie, or Swagger's Authorize dialog) and a question goes through the page and back. Also
over plain HTTP: the OpenAPI document with its X-API-Key scheme, and the login cookie's rules."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from ragroute.server.apidocs import API_KEY_COOKIE
from ragroute.server.app import create_app

from tests.integration.sample_index import PUBLIC_QUESTION, free_port, ingest_sample, wait_http

pytestmark = pytest.mark.integration

READER = "reader-key-0001"
ADMIN = "admin-key-00002"
KEYS = {
    READER: {"user": "rita", "groups": ["eng"], "clearance": 1},
    ADMIN: {"user": "ada", "write": True, "unrestricted": True},
}
PUBLIC_ANSWER = "90 days"  # what the sample corpus says about PUBLIC_QUESTION
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[str]:
    """The app with API keys on a loopback uvicorn server."""
    import uvicorn

    index = ingest_sample(tmp_path_factory.mktemp("pages") / "index", embedder)
    app = create_app(index.path, KEYS, index=index, tracing=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", timeout=30)
    yield url
    server.should_exit = True
    thread.join(timeout=10)
    index.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium; the test fails (never downloads a browser) when it is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run `sh tests/setup_browser.sh` (installs Debian's chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A fresh browser context whose requests outside the server are refused and remembered."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.base_url = base_url
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(20_000)
        self.context.route("**/*", self._only_local)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _only_local(self, route: Any) -> None:
        if route.request.url.startswith(self.base_url):
            route.continue_()
        else:  # a CDN, fonts, telemetry: the pages must work without them
            self.outside.append(route.request.url)
            route.abort()

    def log_in(self, path: str, key: str) -> None:
        """Open `path`, get sent to /login, type the key and come back to `path`."""
        page = self.page
        page.goto(self.base_url + path)
        assert page.url.startswith(f"{self.base_url}/login?next="), page.url
        assert key not in page.content()
        page.fill("#api_key", key)
        page.click("button[type=submit]")
        page.wait_for_url(self.base_url + path)


@pytest.fixture
def tab(browser: Any, live_url: str) -> Iterator[Page]:
    tab = Page(browser, live_url)
    yield tab
    tab.context.close()
    assert tab.outside == [], f"the page tried to load from outside the server: {tab.outside}"


def drawn(png: Path) -> tuple[float, int]:
    """(share of pixels not in the page's background colour, number of distinct colours) of a screenshot."""
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    return 1.0 - counts.max() / len(pixels), len(colours)


def assert_rendered(tab: Page, png: Path) -> None:
    """The page's screenshot shows content, not an empty background."""
    tab.page.screenshot(path=str(png), full_page=False)
    share, colours = drawn(png)
    assert share > 0.02 and colours > 50, f"{png.name} looks blank: {share:.1%} drawn, {colours} colours"


# ----------------------------------------------------------------------------- plain HTTP


def test_openapi_describes_the_routes_and_the_api_key_header(live_url: str) -> None:
    r = httpx.get(f"{live_url}/openapi.json", headers={"X-API-Key": READER})
    assert r.status_code == 200, r.text[:500]
    doc = r.json()
    assert {"/ask/invoke", "/ask/stream", "/ingest", "/documents/{doc_id}", "/health", "/stats"} <= set(
        doc["paths"]
    )
    scheme = doc["components"]["securitySchemes"]["APIKeyHeader"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    assert doc["security"] == [{"APIKeyHeader": []}]
    assert doc["paths"]["/health"]["get"]["security"] == []  # the guard lets /health in without a key
    assert "security" not in doc["paths"]["/ingest"]["post"]  # the document-wide requirement applies
    assert "/login" not in doc["paths"]
    # the playground's schemas draw nullable fields as their type; the OpenAPI keeps the null
    for path in ("input_schema", "config_schema"):
        schema = httpx.get(f"{live_url}/ask/{path}", headers={"X-API-Key": READER}).json()
        assert '{"type": "null"}' not in json.dumps(schema), schema
    assert '{"type": "null"}' in json.dumps(doc)
    # an API client without a key gets JSON, not the login page
    r = httpx.get(f"{live_url}/openapi.json")
    assert r.status_code == 401 and r.json() == {"detail": "missing X-API-Key header"}


def test_login_cookie_is_httponly_strict_and_refused_cross_site(live_url: str) -> None:
    nav = {"sec-fetch-mode": "navigate"}
    r = httpx.get(f"{live_url}/docs", headers=nav)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/docs"

    wrong = "wrong-key-000099"
    r = httpx.post(f"{live_url}/login", data={"api_key": wrong, "next": "/docs"})
    assert r.status_code == 401 and "not valid" in r.text and wrong not in r.text
    assert "set-cookie" not in r.headers
    r = httpx.post(f"{live_url}/login", data={"api_key": READER}, headers={"origin": "https://evil.example"})
    assert r.status_code == 403 and "set-cookie" not in r.headers  # login CSRF

    r = httpx.post(f"{live_url}/login", data={"api_key": READER, "next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/docs"  # no open redirect
    assert READER not in r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{API_KEY_COOKIE}={READER};")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/" in cookie
    assert "Max-Age" not in cookie and "Secure" not in cookie  # a session cookie; plain http here

    jar = {API_KEY_COOKIE: READER}
    with httpx.Client(base_url=live_url, cookies=jar) as browser_like:
        assert browser_like.get("/stats").status_code == 200
        body = {"documents": [{"doc_id": "rita/x", "text": "t"}]}
        # a write another site's page makes: the cookie does not count
        for hint in ({"sec-fetch-site": "cross-site"}, {"origin": "https://evil.example"}):
            r = browser_like.post("/ingest", json=body, headers=hint)
            assert r.status_code == 401, (hint, r.text)
        # the same write from this server's page: authenticated as the reader, who may not write
        r = browser_like.post("/ingest", json=body, headers={"sec-fetch-site": "same-origin"})
        assert r.status_code == 403, r.text
        # a header key wins over the cookie (only an unrestricted key sees the cache levels)
        assert "cache" not in browser_like.get("/stats").json()
        assert "cache" in browser_like.get("/stats", headers={"X-API-Key": ADMIN}).json()

    r = httpx.get(f"{live_url}/logout", cookies=jar)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert f'{API_KEY_COOKIE}="";' in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]


# ----------------------------------------------------------------------------- headless Chromium


def test_swagger_ui_renders_offline_and_runs_a_question_with_the_authorized_key(
    tab: Page, tmp_path: Path
) -> None:
    page = tab.page
    tab.log_in("/docs", READER)
    page.get_by_text("/ask/invoke", exact=True).first.wait_for()
    text = page.inner_text("#swagger-ui")
    assert "/ingest" in text and "/documents/{doc_id}" in text and "Authorize" in text
    assert_rendered(tab, tmp_path / "swagger.png")

    # Authorize with another key: Swagger sends it as X-API-Key, which wins over the login cookie
    page.click("button.authorize")
    page.fill(".auth-container input", ADMIN)
    page.click(".auth-btn-wrapper button.authorize")
    page.click(".auth-btn-wrapper button.btn-done")

    operation = page.locator("#operations-ask-ask_invoke_ask_invoke_post")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("textarea.body-param__text").fill(json.dumps({"input": {"question": PUBLIC_QUESTION}}))
    with page.expect_request(lambda r: r.url.endswith("/ask/invoke")) as sent:
        operation.locator("button.execute").click()
    assert sent.value.headers.get("x-api-key") == ADMIN
    answer = operation.locator(".live-responses-table")
    answer.get_by_text(PUBLIC_ANSWER).first.wait_for(timeout=60_000)
    assert '"faithfulness"' in answer.inner_text()
    assert_rendered(tab, tmp_path / "swagger-answer.png")


def test_redoc_renders_offline(tab: Page, tmp_path: Path) -> None:
    tab.log_in("/redoc", READER)
    tab.page.get_by_role("heading", name="Ask Invoke").first.wait_for()
    text = tab.page.inner_text("body")
    assert "ragroute (0.1.0)" in text and "/ask/invoke" in text and "AUTHORIZATIONS:\nAPIKeyHeader" in text
    assert_rendered(tab, tmp_path / "redoc.png")
    # ReDoc's "API docs by Redocly" badge is an image on Redocly's CDN; the page works without it
    tab.outside = [url for url in tab.outside if url != "https://cdn.redoc.ly/redoc/logo-mini.svg"]


def test_playground_renders_its_forms(tab: Page, tmp_path: Path) -> None:
    page = tab.page
    tab.log_in("/ask/playground/", READER)
    question = page.locator('textarea[id="#/properties/question-input"]')
    question.wait_for()
    text = page.inner_text("#root").lower()  # CSS upper-cases the labels
    for label in ("configure", "reranker", "try it", "question*", "filters", "start"):
        assert label in text, (label, text[:2000])
    assert not [e for e in tab.errors if "Unknown type" in e], tab.errors
    assert_rendered(tab, tmp_path / "playground.png")


def test_playground_answers_a_question(tab: Page, tmp_path: Path) -> None:
    page = tab.page
    tab.log_in("/ask/playground/", READER)
    page.locator('textarea[id="#/properties/question-input"]').fill(PUBLIC_QUESTION)
    with page.expect_response(lambda r: r.url.endswith("/ask/stream_log")) as streamed:
        page.get_by_role("button", name="Start").click()
    assert streamed.value.status == 200, streamed.value.status
    page.get_by_text(PUBLIC_ANSWER).first.wait_for(timeout=60_000)
    assert_rendered(tab, tmp_path / "playground-answer.png")
