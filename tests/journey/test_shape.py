"""Response shapes: the type skeleton `gonogo compare` holds two runs' bodies to."""

from __future__ import annotations

import json
import time

from gonogo.journey.shape import MAX_SHAPE_CHARS, SHAPE_BODY_BYTES, body_shape, json_shape


def test_objects_list_their_keys_sorted_with_types_and_no_values() -> None:
    shape = json_shape({"token": "s3cret", "id": 7, "ok": True, "next": None, "ratio": 0.5})
    assert shape == '{"id":number,"next":null,"ok":boolean,"ratio":number,"token":string}'
    assert "s3cret" not in shape


def test_array_elements_are_merged_keys_some_lack_are_optional() -> None:
    items = [{"id": 1, "title": "a"}, {"id": 2, "title": None, "tags": ["x"]}]
    assert json_shape({"items": items}) == '{"items":[{"id":number,"tags?":[string],"title":null|string}]}'
    assert json_shape([]) == "[]"
    assert json_shape([1, "a", [2]]) == "[number|string|[number]]"


def test_the_same_shape_whatever_the_values_or_order() -> None:
    first = json_shape({"b": [1, 2, 3], "a": {"x": "1"}})
    second = json_shape({"a": {"x": "something else"}, "b": [99]})
    assert first == second == '{"a":{"x":string},"b":[number]}'


def test_a_huge_body_costs_little_and_its_shape_is_bounded() -> None:
    wide = {f"key{index:05}": {"nested": [index] * 1000} for index in range(5000)}
    started = time.perf_counter()
    shape = json_shape(wide)
    assert time.perf_counter() - started < 0.5
    assert len(shape) == MAX_SHAPE_CHARS and shape.endswith("…")
    deep: object = 1
    for _ in range(50):
        deep = {"d": deep}
    assert json_shape(deep).count("{") <= 10 and "…" in json_shape(deep)


def test_non_json_bodies_are_their_media_type() -> None:
    assert body_shape(b"hello", 5, True, "text/plain; charset=utf-8") == "text/plain"
    assert body_shape(b"", 0, True, "application/json") == "empty"
    assert body_shape(b"\x00\x01", 2, True, "") == "no content type"
    assert body_shape(b"{oops", 5, True, "application/json") == "application/json (not JSON)"
    big = json.dumps(["x" * 100] * 5000).encode()
    assert big.__len__() > SHAPE_BODY_BYTES
    assert body_shape(big[:2048], len(big), False, "application/json").startswith("application/json (over")
    kept = body_shape(b'{"a": 1', 9000, False, "application/json")
    assert kept == "application/json (not kept whole: not read)"
    problem = b'{"type":"about:blank","status":404}'
    shape = body_shape(problem, len(problem), True, "application/problem+json")
    assert shape == '{"status":number,"type":string}'
