import json

from hypothesis import given, settings
from hypothesis import strategies as st

from edgerelay.core.sse import DONE, SSEEvent, SSEParser, encode_comment, encode_data, encode_event


def parse(*chunks: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.finish()


def test_basic_frames_and_done():
    stream = b'data: {"a":1}\n\ndata: {"a":2}\n\n' + DONE
    assert [e.data for e in parse(stream)] == ['{"a":1}', '{"a":2}', "[DONE]"]


def test_line_endings_crlf_lf_cr_are_all_line_ends():
    for sep in (b"\r\n", b"\n", b"\r"):
        stream = b"event: x" + sep + b"data: 1" + sep + sep + b"data: 2" + sep + sep
        assert parse(stream) == [SSEEvent("1", "x"), SSEEvent("2")]


def test_crlf_split_between_cr_and_lf_is_one_line_end():
    assert parse(b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n") == [SSEEvent("1"), SSEEvent("2")]


def test_multiple_data_lines_join_with_newline_and_comments_are_ignored():
    stream = b": keep-alive\ndata: a\ndata:b\ndata:  c\n\n"
    assert parse(stream) == [SSEEvent("a\nb\n c")]


def test_leading_bom_is_ignored_even_when_split():
    assert parse(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [SSEEvent("x")]


def test_unicode_line_separators_inside_data_are_not_line_breaks():
    payload = json.dumps({"t": "a\u2028b\u2029c\u0085d"}, ensure_ascii=False).encode()
    stream = b"data: " + payload + b"\n\n"
    pieces = [stream[i : i + 1] for i in range(len(stream))]  # splits inside UTF-8 sequences
    (event,) = parse(*pieces)
    assert json.loads(event.data) == {"t": "a\u2028b\u2029c\u0085d"}


def test_event_id_retry_fields():
    assert parse(b"id: 7\nretry: 150\nevent: ping\ndata: {}\n\n") == [
        SSEEvent("{}", "ping", "7", 150)
    ]


def test_retry_takes_only_ascii_digits():
    # str.isdigit() is true for superscripts and Arabic-Indic digits, which int() refuses or
    # reads: the spec says ASCII digits only, and a parser must never raise on what it is sent.
    assert parse(b"retry: \xc2\xb2\ndata: x\n\n") == [SSEEvent("x")]
    assert parse("retry: \u0661\ndata: x\n\n".encode()) == [SSEEvent("x")]
    assert parse(b"retry: 1a\nretry: 20\ndata: x\n\n") == [SSEEvent("x", retry=20)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=8))
def test_any_bytes_in_any_split_never_raise(stream, cuts):
    cuts = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    events = parse(*pieces)
    assert all(isinstance(e.data, str) for e in events)


def test_field_without_colon_and_empty_data():
    assert parse(b"data\n\n") == [SSEEvent("")]
    assert parse(b"event: only\n\n") == []  # no data: nothing dispatched


def test_last_event_without_blank_line_is_delivered_at_finish():
    # Real captures are sometimes cut right after their final frame.
    assert parse(b'event: message_stop\ndata: {"type":"message_stop"}') == [
        SSEEvent('{"type":"message_stop"}', "message_stop")
    ]


def test_encoders_round_trip():
    assert parse(encode_data("x\ny") + encode_event("{}", "e") + encode_comment("ping")) == [
        SSEEvent("x\ny"),
        SSEEvent("{}", "e"),
    ]


texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12
)
events = st.lists(
    st.tuples(
        st.sampled_from(["", "message_delta", "ping"]), st.lists(texts, min_size=1, max_size=3)
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(events, st.sampled_from([b"\n", b"\r\n", b"\r"]), st.data())
def test_any_chunking_yields_the_same_events(evs, eol, data):
    stream = b""
    for name, lines in evs:
        if name:
            stream += b"event: " + name.encode() + eol
        for line in lines:
            stream += b"data: " + line.encode() + eol
        stream += eol
    expected = parse(stream)
    assert len(expected) == len(evs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert parse(*pieces) == expected
