"""The httpx Fetch (Lambda's transport), over respx: no network, no patching of globals."""

import asyncio

import httpx
import pytest
import respx

from edgerelay.core.fetch import FetchError, FetchRequest
from edgerelay.transports.httpx_fetch import HttpxFetch

URL = "https://api.example.test/v1/chat/completions"


def run(coro):
    return asyncio.run(coro)


@respx.mock
def test_request_goes_out_as_built_and_the_body_streams_back_in_pieces():
    route = respx.post(URL).mock(
        return_value=httpx.Response(
            200,
            headers={"Content-Type": "text/event-stream", "X-Request-Id": "r1"},
            stream=httpx.ByteStream(b"data: 1\n\ndata: 2\n\n"),
        )
    )

    async def scenario():
        fetch = HttpxFetch()
        response = await fetch(
            FetchRequest("POST", URL, {"authorization": "Bearer k"}, b'{"a":1}', timeout=5)
        )
        chunks = [chunk async for chunk in response.aiter_bytes()]
        await response.aclose()
        await fetch.aclose()
        return response, chunks

    response, chunks = run(scenario())
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream"  # names lower-cased
    assert response.headers["x-request-id"] == "r1"
    assert b"".join(chunks) == b"data: 1\n\ndata: 2\n\n"
    sent = route.calls.last.request
    assert sent.headers["authorization"] == "Bearer k"
    assert sent.content == b'{"a":1}'


@respx.mock
def test_gzip_bodies_are_decoded_so_the_client_never_gets_compressed_bytes():
    import gzip

    respx.post(URL).mock(
        return_value=httpx.Response(
            200, headers={"Content-Encoding": "gzip"}, content=gzip.compress(b'{"ok":true}')
        )
    )

    async def scenario():
        fetch = HttpxFetch()
        response = await fetch(FetchRequest("POST", URL, {}, b"{}"))
        return await response.read()

    assert run(scenario()) == b'{"ok":true}'


@pytest.mark.parametrize(
    ("error", "timeout"),
    [(httpx.ConnectError("refused"), False), (httpx.ReadTimeout("slow"), True)],
)
@respx.mock
def test_transport_failures_become_fetch_errors_without_the_url(error, timeout):
    respx.post(URL).mock(side_effect=error)

    async def scenario():
        return await HttpxFetch()(FetchRequest("POST", URL + "?key=secret", {}, b"{}"))

    with pytest.raises(FetchError) as raised:
        run(scenario())
    assert raised.value.timeout is timeout
    assert "example.test" not in str(raised.value) and "secret" not in str(raised.value)


@respx.mock
def test_a_body_cut_mid_stream_is_a_fetch_error():
    class Cut(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield b"data: 1\n\n"
            raise httpx.RemoteProtocolError("peer closed connection")

    respx.post(URL).mock(return_value=httpx.Response(200, stream=Cut()))

    async def scenario():
        response = await HttpxFetch()(FetchRequest("POST", URL, {}, b"{}"))
        got = []
        with pytest.raises(FetchError):
            async for chunk in response.aiter_bytes():
                got.append(chunk)
        return got

    assert run(scenario()) == [b"data: 1\n\n"]


@respx.mock
def test_set_cookie_from_an_upstream_is_never_sent_back():
    route = respx.post(URL).mock(
        return_value=httpx.Response(200, headers={"Set-Cookie": "__cf_bm=abc; Path=/"}, json={})
    )

    async def scenario():
        fetch = HttpxFetch()
        for _ in range(2):
            response = await fetch(FetchRequest("POST", URL, {}, b"{}"))
            await response.read()
            await response.aclose()
        return len(fetch.client_for("").cookies)

    assert run(scenario()) == 0
    assert all("cookie" not in call.request.headers for call in route.calls)
    assert route.call_count == 2


@respx.mock
def test_header_values_beyond_ascii_go_out_as_bytes_instead_of_raising():
    # httpx encodes str header values as ASCII. The ASGI adapter hands over the client's bytes
    # decoded as latin-1 (a passthrough forwards e.g. Idempotency-Key); a Lambda event's JSON
    # may hold any character.
    route = respx.post(URL).mock(return_value=httpx.Response(200))

    async def scenario():
        fetch = HttpxFetch()
        headers = {"idempotency-key": "\xc3\xa9t\xc3\xa9", "accept": "application/json; q=€"}
        response = await fetch(FetchRequest("POST", URL, headers, b"{}", timeout=5))
        await response.aclose()
        await fetch.aclose()

    run(scenario())
    sent = dict(route.calls.last.request.headers.raw)
    assert sent[b"idempotency-key"] == "été".encode()  # the client's bytes, unchanged
    assert sent[b"accept"] == "application/json; q=€".encode()
