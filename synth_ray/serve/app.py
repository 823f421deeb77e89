"""The scoring service: a FastAPI ingress on Ray Serve in front of the reward model and the judge.

Start it with ``serve run serve/config.yaml`` or ``synth-ray serve serve/config.yaml``; a
KubeRay RayService runs the same application (``k8s/``). Routes (OpenAPI at ``/docs``):

- ``POST /v1/reward``   (prompt, response) items -> reward-model scores
- ``POST /v1/judge``    items + rubric (additive5 | curation5) -> LLM-as-a-judge scores
- ``POST /v1/compare``  items (response_a, response_b) + principle -> P(A), P(B)
- ``POST /get_reward``  OpenRLHF's remote reward-model shape: ``{"query": [...]}`` ->
  ``{"rewards": [...]}`` (see serve/README.md for why this one)
- ``GET /healthz``      200 when every deployed scorer answers, else 503 naming the broken one

Guard rails, in the order a request meets them (``Guard``, a plain ASGI middleware, runs before
FastAPI reads the body): bearer token (401; the token is compared in constant time and never
logged), body size (413, counted on the bytes received, Content-Length or chunked), JSON
syntax, nesting and encoding (400; a lone UTF-16 surrogate escape too: it parses, but is no
Unicode text and the tokenizers raise on it), then FastAPI's validation (422 naming the field),
then item count (413) and text length (truncate or 413, ``limits.over_long``). Overload: Serve's
``max_queued_requests`` answers 503 with ``Retry-After`` (``backpressure_config`` in the
config); a scorer that is overloaded, restarting or dead gives 503 with ``Retry-After`` too,
never a 500.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve

from synth_ray.serve import schemas as S
from synth_ray.serve.config import AuthConfig, ServeAppConfig

log = logging.getLogger("ray.serve")

OPEN_PATHS = {"/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
RETRY_AFTER_S = "1"
ERRORS = {code: {"model": S.ErrorBody} for code in (400, 401, 413, 422, 503)}  # for /docs

app = FastAPI(
    title="synth-ray scoring service",
    version="1",
    description="Reward-model scores, LLM-as-a-judge rubrics (Self-Rewarding additive 5-point, "
    "Instruction Backtranslation 5-point curation) and Constitutional AI pairwise feedback. "
    "Send `Authorization: Bearer <token>` when the service has a token.",
)


def load_token(auth: AuthConfig) -> str | None:
    """The bearer token: ``auth.token_file`` (a mounted secret) first, then ``auth.token_env``."""
    if auth.token_file:
        path = Path(auth.token_file)
        if not path.is_file():
            raise ValueError(f"auth.token_file: {path} does not exist")
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"auth.token_file: {path} is empty")
        return token
    token = os.environ.get(auth.token_env, "").strip()
    if token:
        return token
    if auth.required:
        raise ValueError(
            f"auth.required is true but neither auth.token_file nor ${auth.token_env} gives a token"
        )
    return None


SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # may open a lone surrogate


def lone_surrogate(value: Any) -> str | None:
    """Where a parsed JSON value holds a lone surrogate (``items.0.prompt (character 3)``, ``the
    key ...``), or None. Iterative: any depth the JSON parser accepts."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                return f"{path or 'body'} (character {exc.start})"
        elif isinstance(v, dict):
            for k, x in reversed(list(v.items())):
                name = k.encode("ascii", "backslashreplace").decode("ascii")  # printable
                sub = f"{path}.{name}" if path else name
                try:
                    k.encode("utf-8")
                except UnicodeEncodeError:
                    return f"the key {sub}"
                stack.append((sub, x))
        elif isinstance(v, list):
            stack += [
                (f"{path}.{i}" if path else str(i), x) for i, x in reversed(list(enumerate(v)))
            ]
    return None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Guard:
    """ASGI middleware: bearer token, then body size, before the app reads anything."""

    def __init__(self, app, token: str | None, max_body_bytes: int):
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self.token is not None and scope.get("path") not in OPEN_PATHS:
            given = headers.get("authorization", b"")
            scheme, _, value = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(value.strip(), self.token):
                why = "missing bearer token" if not given else "invalid bearer token"
                return await _error(
                    401,
                    f"{why}: send 'Authorization: Bearer <token>'",
                    {"WWW-Authenticate": "Bearer"},
                )(scope, receive, send)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return await self._too_large(scope, receive, send, int(declared))
        body, more = b"", True
        while more:  # read it all (bounded) so chunked bodies are limited too
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
            if len(body) > self.max_body:
                return await self._too_large(scope, receive, send, len(body))
        if body and scope.get("method") in ("POST", "PUT", "PATCH"):
            try:
                parsed = json.loads(body)
            except UnicodeDecodeError as exc:
                return await _error(
                    400, f"body is not UTF-8 JSON: {exc.reason} at byte {exc.start}"
                )(scope, receive, send)
            except RecursionError:
                return await _error(
                    400, "body is not valid JSON here: nested deeper than the parser's limit"
                )(scope, receive, send)
            except ValueError as exc:
                return await _error(400, f"body is not valid JSON: {exc}")(scope, receive, send)
            # A \uD800-\uDFFF escape outside a pair parses, but is no Unicode text: the models'
            # tokenizers (and the reply's own UTF-8 encoding) raise on it.
            where = lone_surrogate(parsed) if SURROGATE_ESCAPE.search(body) else None
            if where:
                return await _error(
                    400,
                    f"body is not valid Unicode text: {where} holds a lone surrogate "
                    "(a \\ud800-\\udfff escape outside a surrogate pair)",
                )(scope, receive, send)
            # A JSON-only API: the body was just parsed as JSON, so it is read as JSON whatever
            # its declared type (`curl -d` declares application/x-www-form-urlencoded).
            scope = dict(
                scope,
                headers=[(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
                + [(b"content-type", b"application/json")],
            )
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send, size: int):
        return await _error(
            413,
            f"request body of {size}+ bytes is over the limit of "
            f"{self.max_body} bytes (limits.max_body_bytes)",
        )(scope, receive, send)


@app.exception_handler(RequestValidationError)
async def _validation_error(request, exc: RequestValidationError):
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        ctx = errors[0].get("ctx", {}).get("error", "")
        return _error(400, f"body is not valid JSON{': ' + str(ctx) if ctx else ''}")
    parts = []
    for e in errors[:10]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        msg = "unknown field" if e.get("type") == "extra_forbidden" else e.get("msg", "invalid")
        parts.append(f"{loc}: {msg}")
    return _error(422, "; ".join(parts))


@app.exception_handler(HTTPException)
async def _http_error(request, exc: HTTPException):
    return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256)
@serve.ingress(app)
class Ingress:
    def __init__(self, reward, judge, config: dict[str, Any]):
        c = ServeAppConfig.model_validate(config)
        self.limits = c.limits
        self.reward, self.judge = reward, judge
        token = load_token(c.auth)
        # Serve wraps the FastAPI app in this replica's ASGI entry: install the guard there.
        app.middleware_stack = None  # (re)built on the next request, with the guard
        app.user_middleware.clear()
        app.add_middleware(Guard, token=token, max_body_bytes=c.limits.max_body_bytes)
        log.info(
            "scoring ingress: auth %s, reward %s, judge %s",
            "on" if token else "off",
            "on" if reward else "off",
            "on" if judge else "off",
        )

    # -- limits -----------------------------------------------------------------------------

    def _check_count(self, n: int) -> None:
        if n > self.limits.max_items:
            raise HTTPException(
                413,
                f"items: {n} items, over the limit of "
                f"{self.limits.max_items} per request (limits.max_items)",
            )

    def _text(self, value: str, field: str) -> tuple[str, bool]:
        limit = self.limits.max_text_chars
        if len(value) <= limit:
            return value, False
        if self.limits.over_long == "refuse":
            raise HTTPException(
                413,
                f"{field}: {len(value)} characters, over the limit of "
                f"{limit} (limits.max_text_chars)",
            )
        return value[:limit], True

    async def _call(self, what: str, handle_call):
        """Await a scorer call; overload, restarts and dead replicas become 503 + Retry-After."""
        from ray.exceptions import RayActorError, RayTaskError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        try:
            return await handle_call
        except BackPressureError:
            raise HTTPException(
                503, f"{what} is overloaded; retry later", {"Retry-After": RETRY_AFTER_S}
            ) from None
        except (RayActorError, DeploymentUnavailableError) as exc:
            log.warning("%s unavailable: %s", what, type(exc).__name__)
            raise HTTPException(
                503,
                f"{what} replica unavailable ({type(exc).__name__}); retry later",
                {"Retry-After": RETRY_AFTER_S},
            ) from None
        except RayTaskError as exc:
            # The scorer's engine died under the request (vLLM EngineDeadError): its health
            # check now fails and Serve replaces the replica. Anything else is a bug: 500.
            cause = type(getattr(exc, "cause", None)).__name__
            if cause not in ("EngineDeadError", "EngineGenerateError"):
                raise
            log.warning("%s engine dead: %s", what, cause)
            raise HTTPException(
                503,
                f"{what} engine restarting ({cause}); retry later",
                {"Retry-After": RETRY_AFTER_S},
            ) from None

    def _pairs(self, items: list[S.PairItem]) -> tuple[list[tuple[str, str]], list[bool]]:
        """(prompt, response) texts within the limits, and which of them were truncated."""
        pairs, cut = [], []
        for i, it in enumerate(items):
            p, tp = self._text(it.prompt, f"items.{i}.prompt")
            r, tr = self._text(it.response, f"items.{i}.response")
            pairs.append((p, r))
            cut.append(tp or tr)
        return pairs, cut

    def _need(self, handle, name: str):
        if handle is None:
            raise HTTPException(404, f"this service has no {name} (set `{name}:` in the app args)")
        return handle

    # -- routes -----------------------------------------------------------------------------

    @app.post("/v1/reward", response_model=S.RewardReply, responses=ERRORS)
    async def reward_route(self, body: S.RewardRequest) -> S.RewardReply:
        """One reward-model score per (prompt, response) item."""
        handle = self._need(self.reward, "reward")
        self._check_count(len(body.items))
        pairs, cut = self._pairs(body.items)
        out = await self._call("reward model", handle.score.remote([("pair", p) for p in pairs]))
        results = [
            S.RewardScore(score=s["score"], tokens=s["tokens"], truncated=s["truncated"] or c)
            for s, c in zip(out["results"], cut)
        ]
        return S.RewardReply(model=out["model"], revision=out["revision"], results=results)

    @app.post("/get_reward", response_model=S.OpenRLHFReply, responses=ERRORS)
    async def openrlhf_route(self, body: S.OpenRLHFRequest) -> S.OpenRLHFReply:
        """OpenRLHF's remote reward model API (``--remote_rm_url``): each ``query`` is a full
        sequence (prompt + response in the policy's chat format), scored as given."""
        handle = self._need(self.reward, "reward")
        self._check_count(len(body.query))
        items = [("text", self._text(q, f"query.{i}")[0]) for i, q in enumerate(body.query)]
        out = await self._call("reward model", handle.score.remote(items))
        scores = [s["score"] for s in out["results"]]
        return S.OpenRLHFReply(rewards=scores, scores=scores, extra_logs={})

    @app.post("/v1/judge", response_model=S.JudgeReply, responses=ERRORS)
    async def judge_route(self, body: S.JudgeRequest) -> S.JudgeReply:
        """LLM-as-a-judge with a named rubric; ``samples`` judgements averaged per item."""
        handle = self._need(self.judge, "judge")
        self._check_count(len(body.items))
        if body.samples and body.samples > self.limits.max_samples:
            raise HTTPException(
                422,
                f"samples: {body.samples} is over the limit of "
                f"{self.limits.max_samples} (limits.max_samples)",
            )
        pairs, cut = self._pairs(body.items)
        out = await self._call("judge", handle.judge.remote(body.rubric, pairs, body.samples))
        results = [
            S.JudgeResult(**v, truncated=c, parsed=sum(x is not None for x in v["samples"]))
            for v, c in zip(out["results"], cut)
        ]
        return S.JudgeReply(
            model=out["model"],
            revision=out["revision"],
            rubric=body.rubric,
            output=out["parse"]["output"],
            parse_rate=out["parse"]["parse_rate"] or 0.0,
            results=results,
        )

    @app.post("/v1/compare", response_model=S.CompareReply, responses=ERRORS)
    async def compare_route(self, body: S.CompareRequest) -> S.CompareReply:
        """Constitutional AI feedback: P(A) vs P(B) under a principle, from log-probabilities."""
        handle = self._need(self.judge, "judge")
        self._check_count(len(body.items))
        principle, _ = self._text(body.principle, "principle")
        items, cut = [], []
        for i, it in enumerate(body.items):
            fields = [
                self._text(getattr(it, f), f"items.{i}.{f}")
                for f in ("prompt", "response_a", "response_b")
            ]
            items.append(tuple(v for v, _ in fields))
            cut.append(any(t for _, t in fields))
        out = await self._call("judge", handle.compare.remote(principle, items))
        results = [S.CompareResult(**o, truncated=c) for o, c in zip(out["results"], cut)]
        return S.CompareReply(
            model=out["model"], revision=out["revision"], principle=principle, results=results
        )

    @app.get("/healthz", response_model=S.Health)
    async def healthz(self):
        """200 when every deployed scorer answers within 5 s; 503 naming the ones that don't."""
        import asyncio

        components = {}
        for name, handle in (("reward", self.reward), ("judge", self.judge)):
            if handle is None:
                continue
            try:
                await asyncio.wait_for(handle.model_info.remote(), timeout=5)
                components[name] = "ok"
            except Exception as exc:
                components[name] = f"unavailable: {type(exc).__name__}"
        ok = all(v == "ok" for v in components.values())
        body = {"status": "ok" if ok else "unavailable", "components": components}
        return JSONResponse(
            body,
            status_code=200 if ok else 503,
            headers=None if ok else {"Retry-After": RETRY_AFTER_S},
        )


def build_app(args: dict[str, Any] | None = None):
    """Serve application builder (``import_path: synth_ray.serve.app:build_app``): validates the
    args (``ServeAppConfig``; an error names the field) and binds the deployments."""
    from synth_ray.serve.judge import Judge
    from synth_ray.serve.reward import RewardModel

    config = ServeAppConfig.model_validate(args or {})
    reward = RewardModel.bind(config.reward.model_dump()) if config.reward else None
    judge = Judge.bind(config.judge.model_dump()) if config.judge else None
    return Ingress.bind(reward, judge, json.loads(config.model_dump_json()))
