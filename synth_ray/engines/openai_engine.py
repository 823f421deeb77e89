"""``openai``: any OpenAI-compatible endpoint (vLLM's server, Ray Serve LLM, a hosted API).

Rows go through a Ray Data actor pool; each actor sends its batch's requests concurrently
(asyncio, at most ``max_concurrency`` in flight per actor), with a timeout per request and
retries with exponential backoff (and ``Retry-After``) on 429, 5xx and connection errors.
A request that still fails becomes a row with ``error`` set; the job goes on.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any, Literal

import httpx
import pyarrow as pa
from pydantic import Field

from synth_ray.engines.base import (
    ENGINES,
    INVALID_REQUEST,
    Engine,
    EngineConfig,
    finish_reason,
)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIEngineConfig(EngineConfig):
    type: Literal["openai"] = Field("openai", description="An OpenAI-compatible HTTP endpoint.")
    base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="API root, e.g. https://api.openai.com/v1."
    )
    served_model: str | None = Field(
        None, description="Model name sent to the server (default: the job's `model`)."
    )
    api: Literal["completions", "chat"] | None = Field(
        None,
        description="Endpoint: /completions for raw prompts, /chat/completions for messages. "
        "Default: chosen by the request kind.",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (may be unset)."
    )
    max_concurrency: int = Field(16, ge=1, description="Requests in flight per replica.")
    timeout_s: float = Field(120.0, gt=0, description="Timeout per HTTP request, seconds.")
    max_retries: int = Field(5, ge=0, description="Retries on 429/5xx/connection errors.")
    backoff_s: float = Field(1.0, ge=0, description="First backoff; doubles each retry (+jitter).")
    max_backoff_s: float = Field(60.0, ge=0, description="Backoff cap, seconds.")


@ENGINES.register("openai")
class OpenAIEngine(Engine):
    config_cls = OpenAIEngineConfig
    name = "openai"
    config: OpenAIEngineConfig

    @property
    def served_model(self) -> str:
        return self.config.served_model or self.model.spec

    def preflight(self) -> None:
        """The endpoint answers and serves the model (GET /models), before any work."""
        url = self.config.base_url.rstrip("/") + "/models"
        try:
            r = httpx.get(url, headers=_headers(self.config.api_key_env), timeout=10.0)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"engine.base_url: cannot reach {url}: {exc}") from None
        if r.status_code == 401:
            raise RuntimeError(
                f"engine.base_url: {url} answered 401: set the API key in "
                f"${self.config.api_key_env}"
            )
        if r.status_code == 200:
            served = [m.get("id") for m in r.json().get("data", [])]
            if served and self.served_model not in served:
                raise RuntimeError(
                    f"model {self.served_model!r} is not served at {self.config.base_url} "
                    f"(served: {', '.join(map(str, served))})"
                )

    def _generate(self, ds, input_kind: str, num_rows: int | None = None):
        import ray.data

        return ds.map_batches(
            _OpenAIWorker,
            fn_constructor_kwargs={
                "config": self.config.model_dump(),
                "served_model": self.served_model,
                "model_name": self.model.name,
                "input_kind": input_kind,
            },
            batch_size=self.config.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self.config.replicas),
            num_cpus=0.5,
        )


def _headers(api_key_env: str) -> dict[str, str]:
    key = os.environ.get(api_key_env)
    return {"Authorization": f"Bearer {key}"} if key else {}


class _OpenAIWorker:
    def __init__(self, config: dict, served_model: str, model_name: str, input_kind: str):
        self.c = OpenAIEngineConfig.model_validate(config)
        self.served_model = served_model
        self.model_name = model_name
        self.input_kind = input_kind
        self.api = self.c.api or ("chat" if input_kind == "messages" else "completions")
        self.url = self.c.base_url.rstrip("/") + (
            "/chat/completions" if self.api == "chat" else "/completions"
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        results = asyncio.run(self._run(rows))
        n = batch.num_rows
        cols = {
            "completion": [r["completion"] for r in results],
            "finish_reason": [r["finish_reason"] for r in results],
            "prompt_tokens": [r["prompt_tokens"] for r in results],
            "completion_tokens": [r["completion_tokens"] for r in results],
            "error": [r["error"] for r in results],
            "model": [self.model_name] * n,
            "engine_s": [r["engine_s"] for r in results],
        }
        types = {
            "prompt_tokens": pa.int64(),
            "completion_tokens": pa.int64(),
            "engine_s": pa.float64(),
        }
        for name, values in cols.items():
            if name in batch.column_names:
                batch = batch.drop_columns([name])
            batch = batch.append_column(name, pa.array(values, types.get(name, pa.string())))
        return batch

    async def _run(self, rows: list[dict]) -> list[dict]:
        sem = asyncio.Semaphore(self.c.max_concurrency)
        limits = httpx.Limits(max_connections=self.c.max_concurrency)
        async with httpx.AsyncClient(
            timeout=self.c.timeout_s, limits=limits, headers=_headers(self.c.api_key_env)
        ) as client:

            async def one(row: dict) -> dict:
                async with sem:
                    return await self._request(client, row)

            return await asyncio.gather(*(one(r) for r in rows))

    def _body(self, row: dict) -> dict[str, Any]:
        s = json.loads(row["sampling"])
        body: dict[str, Any] = {
            "model": self.served_model,
            "max_tokens": int(s.get("max_tokens", 256)),
            "temperature": float(s.get("temperature", 1.0)),
            "top_p": float(s.get("top_p", 1.0)),
            "n": 1,
        }
        for key in ("presence_penalty", "frequency_penalty"):
            if s.get(key):
                body[key] = float(s[key])
        if s.get("seed") is not None:
            body["seed"] = int(s["seed"])
        if s.get("stop"):
            body["stop"] = list(s["stop"])
        if s.get("ignore_eos"):
            body["ignore_eos"] = True  # a vLLM server extension
        if s.get("json_schema"):
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "record", "schema": s["json_schema"], "strict": True},
            }
        elif s.get("regex"):
            # vLLM's OpenAI-compatible server (0.32: `structured_outputs`, a request extension);
            # servers without it refuse the field or ignore it.
            body["structured_outputs"] = {"regex": s["regex"]}
        if self.api == "chat":
            msgs = row.get("messages")
            if msgs is None:
                msgs = [{"role": "user", "content": row["prompt"]}]
            body["messages"] = [{"role": m["role"], "content": m["content"]} for m in msgs]
        else:
            body["prompt"] = row["prompt"]
        return body

    async def _request(self, client: httpx.AsyncClient, row: dict) -> dict:
        t0 = time.perf_counter()
        out = await self._attempts(client, row)
        out["engine_s"] = time.perf_counter() - t0
        return out

    async def _attempts(self, client: httpx.AsyncClient, row: dict) -> dict:
        max_tokens = int(json.loads(row["sampling"]).get("max_tokens", 256))
        try:
            body = self._body(row)
        except (KeyError, TypeError, ValueError) as exc:
            return _failed(f"{INVALID_REQUEST}bad request row: {type(exc).__name__}: {exc}")
        last = "no attempt"
        for attempt in range(self.c.max_retries + 1):
            retry_after: float | None = None
            try:
                resp = await client.post(self.url, json=body)
            except httpx.TimeoutException as exc:
                last = f"timeout after {self.c.timeout_s}s ({type(exc).__name__})"
            except httpx.HTTPError as exc:
                last = f"connection error: {type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    try:
                        return _parse(resp.json(), self.api, max_tokens)
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        return _failed(f"unparseable response: {exc}: {resp.text[:200]!r}")
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
                if resp.status_code not in RETRY_STATUS:
                    # 400/413/422: the request is invalid (e.g. too long); a rerun won't retry.
                    final = resp.status_code in (400, 413, 422)
                    return _failed((INVALID_REQUEST if final else "") + last)
                retry_after = _retry_after(resp.headers.get("retry-after"))
            if attempt < self.c.max_retries:
                delay = min(self.c.max_backoff_s, self.c.backoff_s * (2**attempt))
                delay = retry_after if retry_after is not None else delay * (0.5 + random.random())
                await asyncio.sleep(min(delay, self.c.max_backoff_s))
        return _failed(f"gave up after {self.c.max_retries + 1} attempts: {last}")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _failed(reason: str) -> dict:
    return {
        "completion": "",
        "finish_reason": "error",
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "error": reason,
    }


def _parse(data: dict, api: str, max_tokens: int) -> dict:
    choice = data["choices"][0]
    text = choice["message"]["content"] if api == "chat" else choice["text"]
    usage = data.get("usage") or {}
    ctoks = int(usage.get("completion_tokens") or 0)
    reason = choice.get("finish_reason") or finish_reason(None, ctoks, max_tokens)
    return {
        "completion": text or "",
        "finish_reason": reason,
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": ctoks,
        "error": None,
    }
