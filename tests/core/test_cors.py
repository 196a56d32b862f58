from tests.core.gateway_helpers import call, make_gateway

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}


def test_preflight_from_any_origin_by_default():
    gateway, fetch = make_gateway()
    headers = {
        "origin": "https://app.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization",
    }
    response, _ = call(gateway, "OPTIONS", "/v1/chat/completions", headers=headers)
    got = dict(response.headers)
    assert response.status == 204
    assert got["access-control-allow-origin"] == "*"
    assert "POST" in got["access-control-allow-methods"]
    assert got["access-control-allow-headers"] == "content-type, authorization"
    assert fetch.requests == []


def test_responses_carry_allow_origin_for_browser_callers_only():
    gateway, _ = make_gateway()
    response, _ = call(gateway, body=CHAT, headers={"origin": "https://app.example.com"})
    assert ("access-control-allow-origin", "*") in response.headers
    response, _ = call(gateway, body=CHAT)
    assert all(k != "access-control-allow-origin" for k, _ in response.headers)
    # Errors too, or the page could not read why it failed.
    response, _ = call(gateway, body=b"{", headers={"origin": "https://app.example.com"})
    assert response.status == 400
    assert ("access-control-allow-origin", "*") in response.headers


def test_listed_origins_only():
    gateway, _ = make_gateway(EDGERELAY_CORS_ORIGINS="https://app.example.com")
    ok = {"origin": "https://app.example.com", "access-control-request-method": "POST"}
    response, _ = call(gateway, "OPTIONS", "/v1/chat/completions", headers=ok)
    assert dict(response.headers)["access-control-allow-origin"] == "https://app.example.com"
    evil = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    response, _ = call(gateway, "OPTIONS", "/v1/chat/completions", headers=evil)
    assert response.status == 403
    response, _ = call(gateway, body=CHAT, headers={"origin": "https://evil.example"})
    assert all(k != "access-control-allow-origin" for k, _ in response.headers)
