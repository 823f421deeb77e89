"""The scoring service's request guard (``synth_ray.serve.app.Guard``) in process, no Ray: bodies
that parse as JSON but are not Unicode text (a lone UTF-16 surrogate escape, found by fuzzing:
the reward model's tokenizer raised on it, a 500) or that nest deeper than the parser goes
(RecursionError, a 500) are a 400 naming the problem, before any scorer sees them."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from synth_ray.serve.app import Guard, lone_surrogate


@pytest.fixture(scope="module")
def client():
    echo = FastAPI()

    @echo.post("/v1/reward")
    async def reward(body: dict):
        return {"ok": True, "body": body}

    echo.add_middleware(Guard, token="secret", max_body_bytes=1 << 20)
    with TestClient(echo, raise_server_exceptions=False) as c:
        yield c


def post(client, raw: bytes):
    return client.post(
        "/v1/reward",
        content=raw,
        headers={"Authorization": "Bearer secret", "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    "raw,where",
    [
        (rb'{"items": [{"prompt": "\ud800", "response": "r"}]}', "items.0.prompt (character 0)"),
        (rb'{"items": [{"prompt": "p", "response": "ok \uDFFF"}]}', "items.0.response (char"),
        (rb'{"query": ["fine", "a\udc00\ud800b"]}', "query.1 (character 1)"),
        (rb'{"principle": "\ude00x", "items": []}', "principle (character 0)"),
        (rb'{"a\ud800b": 1}', "the key a\\ud800b"),
        (rb'"\ud800"', "body (character 0)"),
    ],
)
def test_a_lone_surrogate_is_a_400_naming_where(client, raw, where):
    r = post(client, raw)
    assert r.status_code == 400, r.text
    assert "lone surrogate" in r.json()["error"] and where in r.json()["error"], r.text


def test_surrogate_pairs_and_escaped_backslashes_pass(client):
    for raw in (
        rb'{"items": [{"prompt": "\ud83d\ude00 smile", "response": "\uD83D\uDE00"}]}',
        rb'{"items": [{"prompt": "a literal \\ud800", "response": "r"}]}',
    ):
        r = post(client, raw)
        assert r.status_code == 200, r.text
        assert r.json()["body"] == json.loads(raw)


def test_nesting_deeper_than_the_parser_is_a_400(client):
    r = post(client, b'{"items": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    assert r.status_code == 400, r.text
    assert "nested deeper" in r.json()["error"]
    ordinary = b'{"items": ' + b"[" * 50 + b"]" * 50 + b"}"
    assert post(client, ordinary).status_code == 200


def test_lone_surrogate_finder():
    assert lone_surrogate({"a": [1, "x", {"b": "ok"}]}) is None
    assert lone_surrogate({"a": [1, "x", {"b": "o\udc00k"}]}) == "a.2.b (character 1)"
    deep: list = ["\ud800"]
    for _ in range(5000):  # deeper than Python's recursion limit: the walk is iterative
        deep = [deep]
    assert lone_surrogate(deep) == "0." * 5000 + "0 (character 0)"
