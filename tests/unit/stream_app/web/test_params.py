"""Every wrong parameter of the request endpoints is refused with a one-line reason."""

from __future__ import annotations

import pytest

from stream_app.web.params import (
    MAX_BODY_BYTES,
    BadRequest,
    parse_list_query,
    parse_session,
    parse_similar_query,
    require_catalogue,
)

BAD_LIST_QUERIES = {
    "n is not a number": ({"fresh": "true", "n": "ten"}, "n must be an integer"),
    "n is zero": ({"fresh": "true", "n": "0"}, "n must be an integer from 1 to 100"),
    "n is too large": ({"fresh": "true", "n": "101"}, "from 1 to 100"),
    "n is negative": ({"fresh": "true", "n": "-3"}, "n must be"),
    "n is a float": ({"fresh": "true", "n": "2.5"}, "n must be"),
    "fresh is not a boolean": ({"fresh": "maybe"}, "fresh must be true or false"),
    "n without fresh": ({"n": "5"}, "fresh lists only"),
    "exclude without fresh": ({"exclude": "a"}, "fresh lists only"),
    "category without fresh": ({"category": "shoes"}, "fresh lists only"),
    "explain without fresh": ({"explain": "true"}, "fresh lists only"),
    "explain not a boolean": ({"fresh": "true", "explain": "yes please"}, "explain must be true or false"),
    "an empty category": ({"fresh": "true", "category": ""}, "category must be text"),
    "a category too long": ({"fresh": "true", "category": "c" * 129}, "category must be text"),
    "a typo": ({"fresh": "true", "excude": "a"}, "unknown parameter 'excude'"),
    "an id too long": ({"fresh": "true", "exclude": "x" * 129}, "longer than 128"),
    "too many excluded": ({"fresh": "true", "exclude": ",".join(f"i{k}" for k in range(1001))}, "at most 1000"),
}


@pytest.mark.parametrize("query,reason", BAD_LIST_QUERIES.values(), ids=list(BAD_LIST_QUERIES))
def test_bad_list_queries_are_refused_with_the_reason(query, reason):
    with pytest.raises(BadRequest, match=reason) as err:
        parse_list_query(query, default_n=10)
    assert "\n" not in str(err.value)


def test_good_list_queries():
    q = parse_list_query({"fresh": "true", "n": " 7 ", "exclude": " a , b,,", "token": "t"}, default_n=10)
    assert q.fresh and q.n == 7 and q.exclude == {"a", "b"}
    assert parse_list_query({"fresh": "false"}, default_n=3) == (False, 3, frozenset(), None, False)
    assert parse_list_query({"fresh": "1", "n": "100"}, default_n=3).n == 100
    q = parse_list_query({"fresh": "true", "category": "shoes", "explain": "1"}, default_n=3)
    assert q.category == "shoes" and q.explain


def test_a_category_needs_a_catalogue():
    require_catalogue(None, 0)
    require_catalogue("shoes", 5)
    with pytest.raises(BadRequest, match="item catalogue"):
        require_catalogue("shoes", 0)


def test_similar_query():
    assert parse_similar_query({}, default_n=10) == (10, None, False)
    assert parse_similar_query({"n": "3", "category": "c", "explain": "true"}, default_n=10) == (3, "c", True)
    for bad in ({"n": "x"}, {"n": "1000"}, {"fresh": "true"}, {"category": ""}, {"explain": "2"}):
        with pytest.raises(BadRequest):
            parse_similar_query(bad, default_n=10)


BAD_BODIES = {
    "empty": (b"", "must be a JSON object"),
    "not JSON": (b"{items: [}", "not valid JSON"),
    "a list": (b'["a"]', "must be a JSON object"),
    "items not a list": (b'{"items": "a,b"}', "items must be a list"),
    "an item not a string": (b'{"items": ["a", 3]}', "non-empty string"),
    "an empty item": (b'{"items": [""]}', "non-empty string"),
    "n a string": (b'{"items": [], "n": "5"}', "n must be an integer"),
    "n a boolean": (b'{"items": [], "n": true}', "n must be an integer"),
    "n too large": (b'{"items": [], "n": 1000}', "from 1 to 100"),
    "exclude not a list": (b'{"items": [], "exclude": "a"}', "exclude must be a list"),
    "an unknown field": (b'{"items": [], "user": "u"}', "unknown field 'user'"),
    "category not text": (b'{"items": [], "category": 5}', "category must be text"),
    "explain not a boolean": (b'{"items": [], "explain": "yes"}', "explain must be true or false"),
    "too many items": (b'{"items": [' + b",".join(b'"i"' for _ in range(501)) + b"]}", "at most 500"),
    "too large": (b'{"items": ["' + b"x" * MAX_BODY_BYTES + b'"]}', "larger than"),
}


@pytest.mark.parametrize("body,reason", BAD_BODIES.values(), ids=list(BAD_BODIES))
def test_bad_session_bodies_are_refused_with_the_reason(body, reason):
    with pytest.raises(BadRequest, match=reason) as err:
        parse_session(body, default_n=10)
    assert "\n" not in str(err.value)


def test_good_session_bodies():
    s = parse_session(b'{"items": ["a", "b", "a"], "exclude": ["c"]}', default_n=4)
    assert s.items == ("a", "b", "a") and s.n == 4 and s.exclude == {"c"}
    assert parse_session(b"{}", default_n=4).items == ()
