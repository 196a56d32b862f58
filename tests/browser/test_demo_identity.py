"""The demo page against a gateway that requires identity, in headless Chromium, from another
origin: no credential → the 401 shown readably with what the owner must set; a JWT from a
loopback JWKS streams; a Turnstile session (the widget stubbed: the real script needs the
internet, so its URL is routed to a stub) streams, and is renewed when it expires."""

from __future__ import annotations

import json
import os
import threading

import pytest

from tests.browser.conftest import CHROMIUM
from tests.support.jwt_keys import JwksServer, claims, make_key
from tests.support.loopback import WAIT, Reply, Seen

# CI installs Chromium (.ci/run); only a developer's machine without it may skip.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed"
)

TURNSTILE_URL = "https://challenges.cloudflare.com/turnstile/v0/api.js*"
SITE_KEY = "1x00000000000000000000AA"  # Cloudflare's public test site key ("always passes")
# A stand-in for Cloudflare's widget: render() and reset() each hand the page a fresh one-use
# token through the callback, as the real widget does after its check.
TURNSTILE_STUB = """
window.turnstileIssued = [];
window.turnstileSiteKeys = [];
window.turnstile = (() => {
  const widgets = {};
  const issue = (id) => setTimeout(() => {
    const token = "stub-turnstile-" + (window.turnstileIssued.length + 1);
    window.turnstileIssued.push(token);
    widgets[id].callback(token);
  }, 0);
  return {
    render(el, options) {
      const id = "widget-" + (Object.keys(widgets).length + 1);
      widgets[id] = options;
      window.turnstileSiteKeys.push(options.sitekey);
      issue(id);
      return id;
    },
    reset(id) { issue(id); },
    remove(id) { delete widgets[id]; },
  };
})();
"""


class Siteverify:
    """A fake Turnstile siteverify: one success per token, a reused token fails (as Cloudflare's
    does)."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, seen: Seen) -> Reply:
        token = json.loads(seen.body).get("response")
        with self.lock:
            fresh = token not in self.tokens
            self.tokens.append(token)
        outcome = {"success": fresh, "hostname": "127.0.0.1"}
        if not fresh:
            outcome["error-codes"] = ["timeout-or-duplicate"]
        return Reply(200, {"content-type": "application/json"}, [json.dumps(outcome).encode()])


def open_page(browser):
    """A new page whose Turnstile script is the stub (no request leaves the machine)."""
    page = browser.new_page()
    page.route(
        TURNSTILE_URL,
        lambda route: route.fulfill(
            status=200, content_type="text/javascript", body=TURNSTILE_STUB
        ),
    )
    return page


def send(page, prompt: str) -> None:
    page.evaluate("document.body.dataset.state = ''")
    page.fill("#prompt", prompt)
    page.click("#send")
    page.wait_for_selector("body[data-state=done], body[data-state=error]", timeout=WAIT * 1000)


@pytest.fixture
def jwks_host():
    key = make_key("RS256", kid="page-key")
    with JwksServer([key]) as server:
        yield server, key


def test_without_a_credential_the_401_is_shown_with_what_to_set(
    gateway_for, jwks_host, page_origin, browser
):
    server, _ = jwks_host
    gateway = gateway_for({"EDGERELAY_JWKS_URL": server.url})
    page = open_page(browser)
    page.goto(f"{page_origin}/index.html?gateway={gateway.url}&model=mock/echo")
    send(page, "let me in")
    assert page.get_attribute("body", "data-state") == "error"
    status = page.text_content("#status")
    assert status.startswith("401: ")  # the gateway's message, readable, not "[object Object]"
    assert "needs a credential" in status
    # The page's own explanation opens, naming what the owner sets.
    assert page.get_attribute("#about-401", "open") is not None
    about = page.text_content("#about-401")
    for setting in (
        "EDGERELAY_JWKS_URL",
        "EDGERELAY_TURNSTILE_SECRET",
        "EDGERELAY_ALLOW_ANONYMOUS",
    ):
        assert setting in about
    assert page.is_hidden("#session")  # this gateway has no sessions


def test_a_jwt_from_the_jwks_streams(gateway_for, jwks_host, page_origin, browser):
    server, key = jwks_host
    gateway = gateway_for({"EDGERELAY_JWKS_URL": server.url})
    page = open_page(browser)
    page.goto(f"{page_origin}/index.html?gateway={gateway.url}&model=mock/echo")
    page.fill("#token", key.mint(claims(sub="page-user")))
    send(page, "signed in and streaming")
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#status")
    assert page.text_content("#output") == "signed in and streaming"
    assert server.requests == 1


def test_a_turnstile_session_streams_and_is_renewed_when_it_expires(
    gateway_for, upstream, page_origin, browser
):
    siteverify = Siteverify()
    upstream.handler = siteverify
    gateway = gateway_for(
        {
            "EDGERELAY_TURNSTILE_SECRET": "turnstile-secret-canary",
            "EDGERELAY_SESSION_SECRET": "session-secret-canary-0123456789abcdef",
            "EDGERELAY_TURNSTILE_SITE_KEY": SITE_KEY,
            "EDGERELAY_TURNSTILE_VERIFY_URL": upstream.url + "/siteverify",
            "EDGERELAY_SESSION_TTL": "120",
        }
    )
    page = open_page(browser)
    page.clock.install()  # the page's Date.now(), moved forward below instead of waiting
    page.goto(f"{page_origin}/index.html?gateway={gateway.url}&model=mock/echo")
    page.wait_for_selector("body[data-session=active]", timeout=WAIT * 1000)
    assert page.evaluate("window.turnstileSiteKeys") == [SITE_KEY]
    send(page, "no sign-in needed")
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#status")
    assert page.text_content("#output") == "no sign-in needed"
    assert siteverify.tokens == ["stub-turnstile-1"]

    page.clock.fast_forward(100_000)  # 100 s: within the renewal margin of the 120 s session
    send(page, "still here")
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#status")
    assert page.text_content("#output") == "still here"
    # A fresh widget token bought the new session; the used one was never sent again.
    assert siteverify.tokens == ["stub-turnstile-1", "stub-turnstile-2"]
