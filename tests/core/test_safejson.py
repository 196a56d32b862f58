"""The JSON nesting limit: measured outside strings, exactly, before anything is parsed (under
Pyodide a deep document is a fatal stack overflow, not a RecursionError)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgerelay.core import safejson
from edgerelay.core.safejson import MAX_DEPTH, TooDeep, depth, loads


def nested(n: int) -> str:
    return '{"a": ' * (n // 2) + "[" * (n - n // 2) + "]" * (n - n // 2) + "}" * (n // 2)


def true_depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(true_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(true_depth, value), default=0)
    return 0


def test_at_the_limit_parses_one_more_is_refused_before_parsing():
    assert loads(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    with pytest.raises(TooDeep):
        loads(nested(MAX_DEPTH + 1))
    with pytest.raises(ValueError):  # TooDeep is a ValueError, as any invalid JSON
        loads(b"[" * 1_000_000)


def test_brackets_inside_strings_do_not_count_and_cannot_hide_nesting():
    lots = "[{" * MAX_DEPTH
    assert loads(json.dumps({"text": lots})) == {"text": lots}
    # Closers in a string must not offset the real nesting that follows.
    hiding = json.dumps({"t": "]}" * 1000, "escaped": 'a\\"]]]\\\\'})[:-1] + ', "x": '
    with pytest.raises(TooDeep):
        loads(hiding + nested(MAX_DEPTH + 1) + "}")
    with pytest.raises(TooDeep):  # UTF-16 bodies, which json.loads also takes
        loads(("[" + '"\\"]]]]",' + nested(MAX_DEPTH + 1) + "]").encode("utf-16"))


def test_unterminated_and_invalid_input_is_still_measured_or_fails_cleanly():
    with pytest.raises(TooDeep):
        loads("[" * (MAX_DEPTH + 1) + '"unterminated')
    with pytest.raises(ValueError):  # inside a string that never ends: the decoder stops there
        loads('["unterminated' + "[" * MAX_DEPTH)
    with pytest.raises(ValueError):
        loads(b"\xff\xfe\x00" + b"[" * 1000)


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_the_measure_is_exact_outside_strings(value):
    original = safejson.MAX_DEPTH
    safejson.MAX_DEPTH = 0  # always measure, never the shortcut
    try:
        assert depth(json.dumps(value)) == true_depth(value)
        assert depth(json.dumps(value).encode()) == true_depth(value)
    finally:
        safejson.MAX_DEPTH = original


def test_values_are_counted_outside_strings_only():
    assert not safejson.values_over(b"[1,2,3,4]", 4)
    assert safejson.values_over(b"[1,2,3,4]", 3)
    assert safejson.values_over(b'{"a":[{"b":1},{"c":2}]}', 4)
    inside = b'{"a": "1,2,3,[{\\",[{", "b": 1}'  # commas, brackets and an escaped quote
    assert not safejson.values_over(inside, 2)
    assert not safejson.values_over(inside.decode().encode("utf-16"), 2)
    assert safejson.values_over("[" + "0," * 10 + "0]", 10)


def true_values(value) -> int:
    """What values_over counts: every array and object, plus the commas between members."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return 1 + max(len(value) - 1, 0) + sum(map(true_values, value))
    return 0


many_strings = st.lists(st.text(alphabet='ab,"\\', max_size=3), min_size=1, max_size=40).map(
    lambda items: items if len(items) % 2 else {f"k{i}": s for i, s in enumerate(items)}
)


@settings(max_examples=200, deadline=None)
@given(json_values | many_strings)
def test_the_count_is_exact_at_every_limit(value):
    # Strings and their escapes included; the shortcut for documents of many strings as well.
    text = json.dumps(value)
    true = true_values(value)
    for limit in range(true + 2):
        assert safejson.values_over(text, limit) == (true > limit), limit
        assert safejson.values_over(text.encode(), limit) == (true > limit), limit


def test_a_document_of_many_strings_is_judged_without_taking_each_out(monkeypatch):
    # The shortcut: n strings of a valid document bring at least (n - 1) / 3 counted values,
    # so far too many strings answer at once (splitting them out costs an object each).
    body = json.dumps(["x"] * 400).encode()
    monkeypatch.setattr(safejson, "_outside_strings", None)  # would raise if called
    assert safejson.values_over(body, 100)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
@settings(max_examples=50, deadline=None)
@given(value=json_values)
def test_loads_reads_what_json_loads_reads_in_every_encoding(encoding, value):
    text = json.dumps(value, ensure_ascii=False)
    assert loads(text) == json.loads(text)
    assert loads(text.encode(encoding)) == json.loads(text.encode(encoding))


def test_loads_refuses_what_json_loads_refuses():
    for bad in ["\ufeff{}", "{", "", b"\xff\xfe{", "[1,]"]:
        with pytest.raises(ValueError):
            json.loads(bad)
        with pytest.raises(ValueError):
            loads(bad)
