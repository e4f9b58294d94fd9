"""The C accelerator of the attribute loop (otel_threads.otlp._speedups) against the Python path.

- Attribute lists built byte by byte (every AnyValue kind, nesting past MAX_DEPTH,
  unicode, JSON escapes, invalid UTF-8, non-canonical and garbage encodings,
  repeated keys) give the same texts, derived values and exceptions through the C
  loop (with its fallback) as through ``otel_threads.otlp.attributes.python_attribute_column``;
  and the C loop itself handles (does not hand back) every canonical, valid list.
- Whole requests (the existing test corpus, and mutations of it) decode to the
  same table or the same error with the accelerator on and off.
- Every test of tests/test_decode.py runs again here with the accelerator off
  (``attributes._speedups`` set to None, as ``OTEL_THREADS_SPEEDUPS=0`` does
  at import); tests/test_decode.py itself runs with it on when it is built.
- No reference or memory is leaked, on success, fallback and error paths.

The comparisons with the C code are skipped when the extension is not built
(``pip install -e .`` builds it; it is optional when no compiler is found).
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import struct
import subprocess
import sys
import tracemalloc

import pytest
import test_decode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_threads.otlp import attributes as decode_attributes
from otel_threads.otlp.decode import DecodeError, decode_traces_protobuf
from otel_threads.otlp.values import MAX_DEPTH, NO_MARKS, THREAD_ID_KEYS, encode_json
from otel_threads.otlp.wire import TracesRequest, key_values

try:
    from otel_threads.otlp import _speedups
except ImportError:
    _speedups = None

needs_speedups = pytest.mark.skipif(
    _speedups is None, reason="otel_threads.otlp._speedups not built"
)

# --- the tests of test_decode.py, with the accelerator off -------------------------

_RERUN = {}
for _name, _test in vars(test_decode).items():
    if _name.startswith("test_") and callable(_test):
        _RERUN[_test] = f"{_name}_without_speedups"
        globals()[f"{_name}_without_speedups"] = _test


def _accelerator_is_off():
    assert decode_attributes._speedups is None


_RERUN[_accelerator_is_off] = "test_reruns_are_without_speedups"
test_reruns_are_without_speedups = _accelerator_is_off


@pytest.fixture(autouse=True)
def _pure_python_for_the_reruns(request, monkeypatch):
    if request.function in _RERUN:
        monkeypatch.setattr(decode_attributes, "_speedups", None)


def test_environment_switch():
    code = "from otel_threads.otlp import attributes as d; print(d.ACCELERATED)"
    env = {**os.environ, "OTEL_THREADS_SPEEDUPS": "0"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == "False", run.stderr
    env.pop("OTEL_THREADS_SPEEDUPS")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == str(_speedups is not None), run.stderr


# --- the wire, by hand ---------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 127:
        out.append(n & 127 | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def vint(number: int, value: int) -> bytes:
    """A varint field (negative int64 as its 10-byte two's complement)."""
    return varint(number << 3) + varint(value & (2**64 - 1))


def fixed64(number: int, raw: bytes) -> bytes:
    return varint(number << 3 | 1) + raw


def python_outcome(lists: list) -> tuple:
    try:
        texts, derived = decode_attributes.python_attribute_column(lists)
    except Exception as exc:  # the exact exception is part of the outcome
        return ("raise", type(exc), str(exc))
    return ("ok", [normal_text(t) for t in texts], [typed(d) for d in derived])


def c_outcome(lists: list) -> tuple:
    try:
        texts, derived = _speedups.attribute_column(lists, decode_attributes._python_attributes)
    except Exception as exc:
        return ("raise", type(exc), str(exc))
    return ("ok", [normal_text(t) for t in texts], [typed(d) for d in derived])


def normal_text(text: bytes | str) -> bytes:
    return text if type(text) is bytes else text.encode()


def typed(derived: tuple) -> tuple:
    return tuple((type(x).__name__, x) for x in derived)


def assert_same(lists: list) -> tuple:
    expected = python_outcome(lists)
    got = c_outcome(lists)
    assert got == expected
    return got


# --- values -----------------------------------------------------------------------

KEY_TEXT = st.one_of(
    st.sampled_from(
        [*THREAD_ID_KEYS[:3], "otel_threads.turn_id", "otel_threads.is_turn", "wandb.is_turn",
         "otel_threads.previous_turn_id", "", "$", "$x", "$$y", "k", 'q"', "b\\", "k" * 200]
    ),
    st.text(alphabet='ab$"\\\x00\x1f\x7f\n\té中\U0001f600\u2028', max_size=6),
    st.text(max_size=8),
)  # fmt: skip
STRING_TEXT = st.one_of(
    st.text(alphabet='ab "\\\x00\x01\x08\x0c\r\n\t\x1f\x7f\x80é中\U0001f600\ufeff', max_size=12),
    st.text(max_size=40),
    st.text(alphabet="abcdefgh ", min_size=100, max_size=400),
    st.sampled_from(["", "t-1", "x" * 130]),
    st.integers(16_000, 20_000).map("y".__mul__),  # (not sampled_from: its repr is too long)
)
FLOATS = st.one_of(
    st.floats(),
    st.sampled_from([0.0, -0.0, 1e16, 1e-7, 1.5, 2.0**63, 5e-324, math.nan, -math.inf]),
    st.binary(min_size=8, max_size=8).map(lambda b: struct.unpack("<d", b)[0]),
)


def leaf_values():
    """(AnyValue bytes, valid) pairs of the scalar kinds."""
    return st.one_of(
        STRING_TEXT.map(lambda s: (ld(1, s.encode()), True)),
        st.booleans().map(lambda b: (vint(2, b), True)),
        st.integers(-(2**63), 2**63 - 1).map(lambda n: (vint(3, n), True)),
        st.integers(0, 300).map(lambda n: (vint(3, n), True)),
        FLOATS.map(lambda x: (fixed64(4, struct.pack("<d", x)), True)),
        st.binary(min_size=8, max_size=8).map(lambda b: (fixed64(4, b), True)),  # NaN payloads
        st.binary(max_size=12).map(lambda b: (ld(7, b), True)),
        st.just((b"", True)),  # empty AnyValue: null
        st.just((ld(1, b""), True)),  # "" set explicitly
        st.just((vint(2, 0), True)),  # false set explicitly
    )


def unique_pairs(children):
    return st.lists(st.tuples(KEY_TEXT, children), max_size=4, unique_by=lambda kv: kv[0])


def nested_values():
    """Valid, canonical AnyValues of any kind and nesting, with unique keys."""
    return st.recursive(
        leaf_values(),
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(
                lambda items: (ld(5, b"".join(ld(1, raw) for raw, _ in items)), True)
            ),
            unique_pairs(children).map(
                lambda pairs: (
                    ld(6, b"".join(ld(1, ld(1, k.encode()) + ld(2, raw)) for k, (raw, _) in pairs)),
                    True,
                )
            ),
        ),
        max_leaves=8,
    )


def kv(key: bytes, value: bytes) -> bytes:
    return ld(1, key) + ld(2, value)


def wrap_deep(value: bytes, depth: int, kinds: list[bool]) -> bytes:
    """value inside `depth` arrays or kvlists (kinds[i % len(kinds)]: kvlist)."""
    for i in range(depth):
        kvlist = kinds[i % len(kinds)]
        value = ld(6, ld(1, kv(b"k", value))) if kvlist else ld(5, ld(1, value))
    return value


VALID_LISTS = st.lists(
    st.tuples(KEY_TEXT, nested_values()), max_size=10, unique_by=lambda kv: kv[0]
).map(lambda pairs: [kv(k.encode(), raw) for k, (raw, _) in pairs])


# --- properties ---------------------------------------------------------------------

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


@needs_speedups
@SETTINGS
@given(VALID_LISTS)
def test_valid_lists_are_handled_in_c_and_equal_the_python_path(raw_kvs):
    assert _speedups.attributes(raw_kvs) is not None  # no fallback for canonical valid lists
    outcome = assert_same([raw_kvs])
    assert outcome[0] == "ok"
    # and the generic (exact) path of the Python side agrees too
    assert outcome[1][0] == encode_json(key_values(raw_kvs, 0)).encode()


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for position, byte, how in edits:
        position %= len(out) + 1
        if how == "set" and position < len(out):
            out[position] = byte
        elif how == "insert":
            out.insert(position, byte)
        elif how == "delete" and position < len(out):
            del out[position]
        elif how == "truncate":
            del out[position:]
    return bytes(out)


EDITS = st.lists(
    st.tuples(
        st.integers(0, 10**6), st.integers(0, 255),
        st.sampled_from(["set", "insert", "delete", "truncate"]),
    ),
    max_size=3,
)  # fmt: skip


@needs_speedups
@SETTINGS
@given(st.lists(st.tuples(VALID_LISTS, EDITS), min_size=1, max_size=4))
def test_corrupted_lists_equal_the_python_path(lists_and_edits):
    """Truncated, garbage, invalid UTF-8 and reshaped KeyValues: the same texts, or the
    same exception from the same list, as the Python path."""
    lists = [[mutate(raw, edits) for raw in raw_kvs] for raw_kvs, edits in lists_and_edits]
    assert_same(lists)


RAW_STRINGS = st.one_of(
    st.binary(max_size=12),
    st.sampled_from(
        [b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xe2\x82\x28", b"\xf0\x28\x8c\xbc",
         b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80",
         b"\xf5\x80\x80\x80", b"\xff", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf", b"\xed\x9f\xbf",
         b"\xee\x80\x80", b"ok \xc3\xa9", b"x" * 9 + b"\xe9", b"\x00\x1f\"\\"]
    ),
)  # fmt: skip


@needs_speedups
@SETTINGS
@given(st.lists(st.tuples(RAW_STRINGS, RAW_STRINGS, st.booleans()), max_size=5))
def test_invalid_utf8_keys_and_strings_equal_the_python_path(items):
    raw_kvs = [
        kv(key, ld(6, ld(1, kv(b"n", ld(1, value)))) if nested else ld(1, value))
        for key, value, nested in items
    ]
    assert_same([raw_kvs])
    valid = all(_valid_utf8(key) and _valid_utf8(value) for key, value, _ in items)
    unique = len({key for key, _, _ in items}) == len(items)
    assert (_speedups.attributes(raw_kvs) is not None) == (valid and unique)


def _valid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


ODD_VALUES = st.sampled_from(
    [
        b"\x00",  # field number 0
        b"\x08\x01",  # an unknown varint field
        b"\x0a\x01a\x18\x05",  # two oneof fields: the last wins in upb
        b"\x18\x05\x18\x06",  # the same field twice
        b"\x18\x85\x00",  # a non-minimal varint
        b"\x18" + b"\xff" * 9 + b"\x01",  # -1, 10 bytes
        b"\x18" + b"\xff" * 9 + b"\x7f",  # bits past 64
        b"\x18" + b"\xff" * 10 + b"\x01",  # 11 bytes
        b"\x10\x02",  # bool 2
        b"\x10\xff\x01",  # bool 255
        b"\x1a\x01a",  # int64 as length-delimited
        b"\x21\x00\x00",  # short double
        b"\x22\x01a",  # double as length-delimited
        b"\x2a\x02\x0a\x00",  # [null]
        b"\x2a\x02\x12\x00",  # array with an unknown field
        b"\x2a\x03\x0a\x05a",  # array item past its end
        b"\x32\x02\x0a\x00",  # {"": null}
        b"\x32\x04\x0a\x00\x0a\x00",  # {"": null, "": null}: a repeated key
        b"\x32\x02\x08\x00",  # kvlist with an unknown field
        b"\x3a\x00",  # empty bytes
        b"\x3a\x05ab",  # bytes past the end
        b"\x42\x00",  # unknown length-delimited field 8
        b"\x0b\x0c",  # a group
        b"\x8a\x00\x01a",  # a non-minimal tag
    ]
)
ODD_KEY_VALUES = st.one_of(
    st.sampled_from(
        [
            b"",  # no key, no value
            ld(1, b"k"),  # no value
            ld(2, ld(1, b"v")),  # no key
            ld(2, ld(1, b"v")) + ld(1, b"k"),  # value first
            ld(1, b"k") + ld(1, b"k2") + ld(2, b""),  # the key twice
            ld(1, b"k") + ld(2, vint(3, 1)) + ld(2, vint(3, 2)),  # the value twice
            ld(1, b"k") + vint(3, 1) + ld(2, vint(3, 2)),  # an unknown field
            b"\x0a\x85\x00k" + b"\x12\x00",  # a non-minimal length
            b"\x0a\x05k",  # a key past the end
        ]
    ),
    ODD_VALUES.map(lambda value: kv(b"odd", value)),
    ODD_VALUES.map(lambda value: kv(b"x", ld(5, ld(1, value)))),
    st.binary(max_size=16),
)


@needs_speedups
@SETTINGS
@given(st.lists(st.one_of(ODD_KEY_VALUES, VALID_LISTS.map(lambda kvs: kvs[0] if kvs else b"")),
                max_size=6))  # fmt: skip
def test_odd_encodings_equal_the_python_path(raw_kvs):
    assert_same([raw_kvs])


@needs_speedups
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3),
    st.lists(st.booleans(), min_size=1, max_size=3),
    st.sampled_from([b"", vint(3, 7), b"\xff\xff garbage", ld(1, b"\xff"), ld(5, b"")]),
)
def test_depth_cap_equals_the_python_path(depth, kinds, innermost):
    """Past MAX_DEPTH a value becomes {"$truncated":"depth"} unparsed, garbage or not."""
    raw_kvs = [kv(b"deep", wrap_deep(innermost, depth, kinds))]
    outcome = assert_same([raw_kvs])
    if outcome[0] == "ok" and innermost and depth > MAX_DEPTH:
        assert b'{"$truncated":"depth"}' in outcome[1][0]


@needs_speedups
def test_very_deep_nesting_is_no_crash():
    value = b""
    for _ in range(5_000):
        value = ld(5, ld(1, value))
    assert_same([[kv(b"deep", value)]])


@needs_speedups
@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "$a", "é", ""]), nested_values()),
                min_size=2, max_size=6))  # fmt: skip
def test_repeated_keys_fall_back_and_keep_the_last_value(pairs):
    raw_kvs = [kv(k.encode(), raw) for k, (raw, _) in pairs]
    outcome = assert_same([raw_kvs])
    repeated = len({k for k, _ in pairs}) < len(pairs)
    assert (_speedups.attributes(raw_kvs) is None) == repeated
    assert outcome[0] == "ok"


@needs_speedups
def test_many_keys_use_the_hash_table():
    raw_kvs = [kv(b"key%d" % i, vint(3, i)) for i in range(1000)]
    text, derived = _speedups.attributes(raw_kvs)
    assert assert_same([raw_kvs])[1] == [text]
    assert derived is NO_MARKS
    assert _speedups.attributes([*raw_kvs, kv(b"key500", ld(1, b"again"))]) is None
    nested = ld(6, b"".join(ld(1, raw) for raw in raw_kvs))
    assert _speedups.attributes([kv(b"n", nested)]) is not None
    assert _speedups.attributes([kv(b"n", nested + ld(1, kv(b"key7", b"")))]) is None


def test_examples_of_the_encoding():
    cases = {
        (kv(b"s", ld(1, 'a"b\\c\n\x01\x1f\x7f é\U0001f600'.encode())),):
            '{"s":"a\\"b\\\\c\\n\\u0001\\u001f\x7f é\U0001f600"}',
        (kv(b"i", vint(3, -(2**63))), kv(b"j", vint(3, 2**63 - 1))):
            '{"i":-9223372036854775808,"j":9223372036854775807}',
        (kv(b"d", fixed64(4, struct.pack("<d", 1e16))), kv(b"e", fixed64(4, bytes(8)))):
            '{"d":1e+16,"e":0.0}',
        (kv(b"n", fixed64(4, struct.pack("<d", -math.nan))),
         kv(b"m", fixed64(4, struct.pack("<d", -math.inf)))):
            '{"n":{"$double":"NaN"},"m":{"$double":"-Infinity"}}',
        (kv(b"$b", ld(7, b"\x00\xff1")), kv(b"", b""), kv(b"b", vint(2, 0))):
            '{"$$b":{"$bytes":"AP8x"},"":null,"b":false}',
        (kv(b"a", ld(5, ld(1, ld(6, ld(1, kv(b"$k", ld(5, b""))))) + ld(1, b""))),):
            '{"a":[{"$$k":[]},null]}',
        (kv(b"a", ld(5, ld(1, b"")) + ld(1, b"x")),): '{"a":"x"}',  # two fields: the last wins
    }  # fmt: skip
    for raw_kvs, text in cases.items():
        texts, _ = decode_attributes.attribute_column([list(raw_kvs)])
        assert normal_text(texts[0]) == text.encode()
        assert python_outcome([list(raw_kvs)])[1] == [text.encode()]


@needs_speedups
def test_derived_values():
    t, turn, is_turn = THREAD_ID_KEYS[0], b"otel_threads.turn_id", b"otel_threads.is_turn"
    prev = b"otel_threads.previous_turn_id"
    cases = [
        ([kv(t.encode(), ld(1, b"th")), kv(turn, ld(1, b"tu")), kv(is_turn, vint(2, 1)),
          kv(prev, ld(1, b"pr"))], ("th", "tu", True, "pr")),
        ([kv(THREAD_ID_KEYS[1].encode(), ld(1, b"low")), kv(t.encode(), ld(1, b""))],
         ("low", None, None, None)),
        ([kv(t.encode(), vint(3, 5)), kv(is_turn, ld(1, b"true")),
          kv(b"wandb.is_turn", vint(2, 0))],
         (None, None, False, None)),
        ([kv(t.encode(), ld(1, "é中".encode())), kv(is_turn, vint(2, 3))],
         ("é中", None, True, None)),
        ([kv(b"$" + t.encode(), ld(1, b"x")), kv(turn, b"")], (None, None, None, None)),
    ]  # fmt: skip
    for raw_kvs, expected in cases:
        _, (derived,) = _speedups.attribute_column([raw_kvs], None)
        assert typed(derived) == typed(expected)
        assert assert_same([raw_kvs])[2] == [typed(expected)]
    assert _speedups.attributes([kv(b"other", ld(1, b"x"))])[1] is NO_MARKS
    assert _speedups.attributes([])[1] is NO_MARKS


@needs_speedups
def test_iterators_and_containers():
    """A one-pass iterator is left whole to the Python path; upb's containers are read."""
    raw_kvs = [kv(b"a", vint(3, 1)), kv(b"b", ld(1, b"x"))]
    assert _speedups.attributes(iter(raw_kvs)) is None
    assert c_outcome([iter(raw_kvs)]) == python_outcome([iter(raw_kvs)])  # (len() fails)
    expected = python_outcome([raw_kvs])
    assert c_outcome([tuple(raw_kvs)]) == expected
    request = test_decode.one_span_request([("a", 1), ("b", "x")]).SerializeToString()
    span = TracesRequest.FromString(request).resource_spans[0].scope_spans[0].spans[0]
    assert c_outcome([span.attributes]) == expected
    assert _speedups.attributes(span.attributes) is not None


# --- whole requests, accelerator on and off -------------------------------------------


def request_outcome(data: bytes, accelerated: bool, monkeypatch) -> tuple:
    monkeypatch.setattr(decode_attributes, "_speedups", _speedups if accelerated else None)
    try:
        batch = decode_traces_protobuf(data)
    except DecodeError as exc:
        return ("error", str(exc))
    return ("ok", batch.table.to_pylist(), batch.accepted, batch.rejected, batch.error)


CORPUS = [
    test_decode.SEED_TRACES.SerializeToString(),
    test_decode.CORRUPTIBLE,
    test_decode.one_span_request(
        [("string", "1"), ("bytes", b"\x00\xff1"), ("empty", None), ("nan", math.nan),
         ("array", ["1", 1, 1.0, True, None, [b"x"]]), ("$double", "tag-like"),
         ("kvlist", ("kv", [("a", 1), ("$bytes", "x"), ("n", ("kv", [("b", [])]))])),
         ("unicode", "héllo ✓ 中文 \U0001f600"), ("escapes", 'q " b \\ n \n t \t nul \x00')]
    ).SerializeToString(),
]  # fmt: skip


@needs_speedups
@pytest.mark.parametrize("data", CORPUS)
def test_corpus_requests_decode_alike(data, monkeypatch):
    on = request_outcome(data, True, monkeypatch)
    assert on == request_outcome(data, False, monkeypatch)
    assert on[0] == "ok"


@needs_speedups
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(CORPUS), EDITS)
def test_mutated_requests_decode_alike(data, edits):
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert request_outcome(mutate(data, edits), True, monkeypatch) == request_outcome(
            mutate(data, edits), False, monkeypatch
        )


@needs_speedups
def test_bench_requests_decode_alike(monkeypatch):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    try:
        import decode as bench
    finally:
        sys.path.pop(0)
    import random

    rnd = random.Random(7)
    for unique in (False, True):
        request = bench.build_request(rnd, unique=unique)
        for data in (request.SerializeToString(),
                     bench.with_llm_payloads(request).SerializeToString()):  # fmt: skip
            on = request_outcome(data, True, monkeypatch)
            assert on == request_outcome(data, False, monkeypatch)
            assert on[2] == bench.SPANS_PER_REQUEST


# --- references and memory ---------------------------------------------------------


def _fallback_that_raises(raw_kvs):
    raise RuntimeError("boom")


@needs_speedups
def test_no_leaks():
    valid = [kv(b"s", ld(1, b"x")), kv(THREAD_ID_KEYS[0].encode(), ld(1, b"t")),
             kv(b"d", fixed64(4, struct.pack("<d", 0.1))), kv(b"b", ld(7, b"bytes")),
             kv(b"n", ld(6, b"".join(ld(1, kv(b"k%d" % i, vint(3, i))) for i in range(40))))
             ]  # fmt: skip
    big = [kv(b"k%d" % i, ld(1, b"v")) for i in range(50)]
    fallback = [kv(b"s", ld(1, b"\xff"))]
    repeated = [*big, kv(b"k3", b"")]
    not_bytes = ["text"]
    inputs = [valid, big, fallback, repeated, not_bytes]
    column = decode_attributes._python_attributes

    def run():
        for raw_kvs in inputs:
            _speedups.attributes(raw_kvs)
        with contextlib.suppress(TypeError):  # "text" is no KeyValue: the Python path raises
            _speedups.attribute_column(inputs, column)
        _speedups.attribute_column(inputs[:2], _fallback_that_raises)
        for bad in ([fallback], 5, [5]):
            with contextlib.suppress(RuntimeError, TypeError):
                _speedups.attribute_column(bad, _fallback_that_raises)
        with contextlib.suppress(TypeError):
            _speedups.attribute_column([fallback], lambda raw_kvs: ("only one",))

    for _ in range(50):
        run()
    gc.collect()
    counts = [sys.getrefcount(x) for x in (*inputs, *valid, NO_MARKS, column)]
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            run()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, after - before
    assert [sys.getrefcount(x) for x in (*inputs, *valid, NO_MARKS, column)] == counts
