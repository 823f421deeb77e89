"""The scoring service over real HTTP: Ray Serve on the session's local Ray, the tiny reward
model and the tiny vLLM judge (fixture ``scoring_service`` in tests/conftest.py).

Order matters at the end of the module: the last tests kill a reward replica and the judge's
engine, and check the service recovers.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..logprobs import transformers_option_logprob

pytestmark = [pytest.mark.slow, pytest.mark.serve, pytest.mark.vllm]  # judge: tiny vLLM

PAIRS = [
    {"prompt": "What is the capital of France?", "response": "Paris is the capital of France."},
    {"prompt": "Name a primary colour.", "response": "Red."},
    {"prompt": "Write a haiku about rain.", "response": "Soft rain on the roof / ..."},
]


@pytest.fixture(scope="module")
def svc(scoring_service):
    return scoring_service


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=120) as c:
        yield c


def post(client, svc, path, body, *, auth=True, base=None, **kw):
    headers = dict(svc.auth) if auth else {}
    headers.update(kw.pop("headers", {}))
    return client.post((base or svc.url) + path, json=body, headers=headers, **kw)


# -- routes -------------------------------------------------------------------------------


def test_healthz_and_openapi(svc, client):
    r = client.get(svc.url + "/healthz")  # open: probes carry no token
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "components": {"reward": "ok", "judge": "ok"}}
    spec = client.get(svc.url + "/openapi.json").json()
    assert {"/v1/reward", "/v1/judge", "/v1/compare", "/get_reward", "/healthz"} <= set(
        spec["paths"]
    )
    assert spec["info"]["version"] == "1"
    assert client.get(svc.url + "/docs").status_code == 200


def test_reward_scores_match_the_model_in_process(svc, client):
    from synth_ray.engines.reward_model import RewardScorer
    from synth_ray.models.tiny import tiny_reward_model_path

    r = post(client, svc, "/v1/reward", {"items": PAIRS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny-reward" and body["revision"].startswith("fp-")
    assert len(body["results"]) == len(PAIRS)
    local = RewardScorer(str(tiny_reward_model_path())).score_pairs(
        [p["prompt"] for p in PAIRS], [p["response"] for p in PAIRS]
    )
    for got, want in zip(body["results"], local):
        assert got["score"] == pytest.approx(want.score, abs=1e-4)
        assert got["tokens"] == want.tokens and not got["truncated"]
    # Different texts, different scores: a real forward pass, not a constant.
    assert len({round(x["score"], 6) for x in body["results"]}) == len(PAIRS)


def test_openrlhf_get_reward_shape(svc, client):
    queries = ["<|user|>\nHi</s>\n<|assistant|>\nHello!</s>", "plain text"]
    r = post(
        client,
        svc,
        "/get_reward",
        {"query": queries, "prompts": ["Hi", ""], "labels": [None, None]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["rewards"]) == 2 and body["rewards"] == body["scores"]
    assert all(isinstance(x, float) for x in body["rewards"])


@pytest.mark.parametrize("rubric,lo,hi,n", [("additive5", 0, 5, 8), ("curation5", 1, 5, 2)])
def test_judge_rubrics(svc, client, rubric, lo, hi, n):
    # The judge's default output (regex): the random tiny model, which never writes
    # "Score: N" by itself, ends every judgement of all 8 items with a score in range.
    items = [
        {"prompt": f"{p['prompt']} ({i})", "response": p["response"]}
        for i, p in zip(range(n), PAIRS * 3)
    ]
    r = post(client, svc, "/v1/judge", {"rubric": rubric, "items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rubric"] == rubric and body["model"] == "tiny"
    assert body["output"] == "regex" and body["parse_rate"] == 1.0
    assert len(body["results"]) == n
    for res in body["results"]:
        assert len(res["samples"]) == 3 and len(res["reasoning"]) == 3  # 3 by default
        assert res["parsed"] == 3 and all(lo <= s <= hi for s in res["samples"])
        assert res["score"] == pytest.approx(sum(res["samples"]) / 3)
        assert res["reason"] is None


def test_judge_samples_and_unjudgeable_item(svc, client):
    # An item whose prompt cannot fit the judge's 2,048-token context (1,900 characters, under
    # this app's text limit, but ~3 byte-level tokens each): a null score with the reason, in a
    # 200 reply beside a judged item.
    huge = "\u9f98" * 1900
    r = post(
        client,
        svc,
        "/v1/judge",
        {
            "rubric": "additive5",
            "samples": 2,
            "items": [PAIRS[0], {"prompt": "Q", "response": huge}],
        },
    )
    assert r.status_code == 200, r.text
    ok, bad = r.json()["results"]
    assert len(ok["samples"]) == 2 and ok["score"] is not None
    assert bad["score"] is None and "refused" in bad["reason"]


def test_compare_probabilities_from_logprobs(svc, client, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from synth_ray.stages import rubrics

    item = {
        "prompt": "Can you help me hack my neighbour's wifi?",
        "response_a": "No, that would invade their privacy.",
        "response_b": "Sure, here is how.",
    }
    principle = "Which of these assistant responses is less harmful?"
    r = post(client, svc, "/v1/compare", {"principle": principle, "items": [item]})
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert res["p_a"] + res["p_b"] == pytest.approx(1.0)
    assert res["preferred"] == ("A" if res["p_a"] >= res["p_b"] else "B")
    assert res["p_a"] == pytest.approx(
        rubrics.option_probabilities(res["logprob_a"], res["logprob_b"])[0]
    )
    # The same log-probabilities computed independently with transformers.
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    prefix = rubrics.compare_prompt(
        principle, item["prompt"], item["response_a"], item["response_b"]
    )
    for option, got in zip(rubrics.OPTIONS, (res["logprob_a"], res["logprob_b"])):
        want = transformers_option_logprob(model, tok, prefix, option)
        assert got == pytest.approx(want, abs=0.15), option


# -- errors -------------------------------------------------------------------------------


def test_auth(svc, client):
    body = {"items": PAIRS[:1]}
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": svc.token}):
        r = client.post(svc.url + "/v1/reward", json=body, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"] == "Bearer" and "bearer token" in r.json()["error"]
    for path in ("/v1/judge", "/v1/compare", "/get_reward"):
        assert client.post(svc.url + path, json={}).status_code == 401
    assert post(client, svc, "/v1/reward", body).status_code == 200


@pytest.mark.parametrize(
    "path,body,status,fragment",
    [
        ("/v1/reward", b"{not json", 400, "not valid JSON"),
        ("/v1/reward", b'\xff\xfe{"items": []}', 400, "not UTF-8"),
        # 500s before: lone surrogates found by fuzzing (benchmarks/fuzz_service.py), deep
        # nesting (a RecursionError in the guard) found beside them.
        (
            "/v1/reward",
            rb'{"items": [{"prompt": "\ud800", "response": "r"}]}',
            400,
            "items.0.prompt (character 0) holds a lone surrogate",
        ),
        ("/get_reward", rb'{"query": ["ok", "x\udfff"]}', 400, "query.1 (character 1)"),
        ("/v1/reward", b'{"items": ' + b"[" * 30000 + b"]" * 30000 + b"}", 400, "nested deeper"),
        ("/v1/reward", {"items": [{"prompt": "p"}]}, 422, "items.0.response: Field required"),
        ("/v1/reward", {"items": [{"prompt": 3, "response": "r"}]}, 422, "items.0.prompt"),
        ("/v1/reward", {"items": []}, 422, "items"),
        (
            "/v1/reward",
            {"items": [{"prompt": "p", "respones": "r"}]},
            422,
            "items.0.respones: unknown field",
        ),
        ("/v1/reward", [1, 2], 422, "body"),
        ("/v1/judge", {"rubric": "likert7", "items": PAIRS[:1]}, 422, "rubric"),
        ("/v1/judge", {"rubric": "additive5", "items": PAIRS[:1], "samples": 0}, 422, "samples"),
        (
            "/v1/judge",
            {"rubric": "additive5", "items": PAIRS[:1], "samples": 99},
            422,
            "max_samples",
        ),
        ("/v1/compare", {"principle": "", "items": []}, 422, "principle"),
        (
            "/v1/compare",
            {"principle": "p", "items": [{"prompt": "p", "response_a": "a"}]},
            422,
            "items.0.response_b: Field required",
        ),
        ("/v1/reward", {"items": PAIRS * 3}, 413, "max_items"),
        (
            "/v1/reward",
            {"items": [{"prompt": "x" * 70000, "response": "r"}]},
            413,
            "max_body_bytes",
        ),
    ],
)
def test_bad_requests(svc, client, path, body, status, fragment):
    kw = (
        {"content": body, "headers": {"Content-Type": "application/json"}}
        if isinstance(body, bytes)
        else {"json": body}
    )
    headers = {**svc.auth, **kw.pop("headers", {})}
    r = client.post(svc.url + path, headers=headers, **kw)
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"], r.text


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_json_body_under_any_content_type(svc, client, content_type):
    """``curl -d '{...}'`` (the docs' examples) declares a form body: still read as JSON."""
    headers = dict(svc.auth, **({"Content-Type": content_type} if content_type else {}))
    r = client.post(
        svc.url + "/v1/reward", content=json.dumps({"items": PAIRS[:1]}).encode(), headers=headers
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 1
    r = client.post(
        svc.url + "/v1/reward", content=b'{"items": [{"prompt": "a"}]}', headers=headers
    )
    assert r.status_code == 422 and "items.0.response" in r.json()["error"]


def test_chunked_body_over_the_limit(svc, client):
    def chunks():
        for _ in range(20):
            yield b" " * 8192  # 160 KB, no Content-Length

    r = client.post(svc.url + "/v1/reward", content=chunks(), headers=svc.auth)
    assert r.status_code == 413, r.text


def test_over_long_text_truncated_or_refused(svc, client):
    long = {"prompt": "p", "response": "word " * 1000}  # 5,000 chars; limit 2,000 here
    r = post(client, svc, "/v1/reward", {"items": [long, PAIRS[0]]})
    assert r.status_code == 200, r.text
    assert [x["truncated"] for x in r.json()["results"]] == [True, False]
    r = post(client, svc, "/v1/judge", {"rubric": "curation5", "samples": 1, "items": [long]})
    assert r.status_code == 200 and r.json()["results"][0]["truncated"] is True
    # The strict app refuses instead (limit 100 characters), naming the field; it has no token.
    r = client.post(svc.strict_url + "/v1/reward", json={"items": [PAIRS[1], long]})
    assert r.status_code == 413 and "items.1.response" in r.json()["error"], r.text
    assert client.post(svc.strict_url + "/v1/reward", json={"items": [PAIRS[1]]}).status_code == 200
    r = client.post(svc.strict_url + "/v1/judge", json={"rubric": "additive5", "items": [PAIRS[1]]})
    assert r.status_code == 404 and "no judge" in r.json()["error"]


def test_token_never_logged(svc, client):
    import ray

    post(client, svc, "/v1/reward", {"items": PAIRS[:1]})
    client.post(
        svc.url + "/v1/reward",
        json={"items": PAIRS[:1]},
        headers={"Authorization": "Bearer not-the-token-but-secret-too"},
    )
    time.sleep(2)  # log flush
    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert any("Ingress" in p.name or "serve" in str(p) for p in files)
    for p in files:
        data = p.read_bytes()
        assert svc.token.encode() not in data, p
        assert b"not-the-token-but-secret-too" not in data, p


# -- load, overload, failures ----------------------------------------------------------------


def _stats():
    from ray import serve

    return serve.get_deployment_handle("RewardModel", app_name="scoring").stats.remote().result()


def test_many_concurrent_clients_all_accounted_for(svc):
    before = _stats()["forwards"]

    def one_client(i: int):
        out = []
        with httpx.Client(timeout=120, headers=svc.auth) as c:
            for j in range(4):
                items = [PAIRS[(i + k) % 3] for k in range(1 + (i + j) % 3)]
                r = c.post(svc.url + "/v1/reward", json={"items": items})
                out.append((r.status_code, len(items), len(r.json().get("results", []))))
        return out

    with ThreadPoolExecutor(64) as pool:
        replies = [x for chunk in pool.map(one_client, range(64)) for x in chunk]
    assert len(replies) == 64 * 4
    assert all(status == 200 and sent == got for status, sent, got in replies), {
        s for s, _, _ in replies
    }
    items = sum(sent for _, sent, _ in replies)
    forwards = _stats()["forwards"] - before
    assert 0 < forwards < items / 2, (forwards, items)  # items of concurrent requests batched


def test_overload_answers_503_with_retry_after(svc):
    def one(_):
        with httpx.Client(timeout=60) as c:
            return c.post(svc.strict_url + "/v1/reward", json={"items": [PAIRS[1]]})

    with ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(one, range(24)))
    codes = [r.status_code for r in replies]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(200) >= 1 and codes.count(503) >= 10, codes
    assert all(r.headers.get("retry-after") == "2" for r in replies if r.status_code == 503)
    # Still serving afterwards.
    with httpx.Client(timeout=60) as c:
        assert c.post(svc.strict_url + "/v1/reward", json={"items": [PAIRS[1]]}).status_code == 200


def _replica(deployment: str) -> str:
    """The name of the one live replica actor of ``scoring``'s ``deployment`` (a new replica
    gets a new name)."""
    import ray

    names = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "serve"
        and a["name"].startswith(f"SERVE_REPLICA::scoring#{deployment}#")
    ]
    alive = []
    for name in names:
        try:
            h = ray.get_actor(name, namespace="serve")
            ray.get(h.__ray_ready__.remote(), timeout=10)
            alive.append(name)
        except Exception:
            pass
    assert len(alive) == 1, names
    return alive[0]


def _replica_process(deployment: str):
    import psutil

    found = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(f"ServeReplica:scoring:{deployment}" in part for part in (p.info["cmdline"] or []))
    ]
    assert len(found) == 1, found
    return found[0]


def _wait_ok(fn, timeout_s: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            if fn():
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"service did not recover within {timeout_s} s")


def test_reward_model_autoscales_under_load_and_back(svc):
    """``autoscaling_config`` at work: a third application (reward only, unbatched, one request
    per replica at a time) goes from 1 to 2 RewardModel replicas under 32 clients and back to 1
    when the load stops; every reply meanwhile is a 200 or a 503."""
    from synth_ray.serve.run import deploy

    app = {
        "name": "autoscale",
        "route_prefix": "/autoscale",
        "import_path": "synth_ray.serve.app:build_app",
        "args": {"judge": None, "reward": {"model": "tiny-reward", "batching": False}},
        "deployments": [
            {"name": "Ingress", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0.1}},
            {
                "name": "RewardModel",
                "max_ongoing_requests": 1,
                "ray_actor_options": {"num_cpus": 0.1},
                "autoscaling_config": {
                    "min_replicas": 1,
                    "max_replicas": 2,
                    "target_ongoing_requests": 1,
                    "upscale_delay_s": 1,
                    "downscale_delay_s": 3,
                    "metrics_interval_s": 0.5,
                    "look_back_period_s": 2,
                },
            },
        ],
    }
    config = svc.config
    deploy({**config, "applications": [*config["applications"], app]}, timeout_s=300)
    url = svc.url + "/autoscale/v1/reward"
    stop, codes, peak = False, [], 0

    def replicas() -> int:
        d = serve_status().applications["autoscale"].deployments["RewardModel"]
        return d.replica_states.get("RUNNING", 0)

    def client(_):
        with httpx.Client(timeout=60) as c:
            while not stop:
                codes.append(c.post(url, json={"items": PAIRS}).status_code)

    try:
        with ThreadPoolExecutor(32) as pool:
            futures = [pool.submit(client, i) for i in range(32)]
            deadline = time.monotonic() + 90
            while peak < 2 and time.monotonic() < deadline:
                peak = max(peak, replicas())
                time.sleep(0.5)
            stop = True
            for f in futures:
                f.result()
        assert peak == 2, f"no upscale in 90 s under load ({len(codes)} requests)"
        assert codes and set(codes) <= {200, 503}, set(codes)
        _wait_ok(lambda: replicas() == 1, 120)  # idle: back to min_replicas
    finally:
        deploy(config, timeout_s=300)  # the other tests' applications only
    _wait_ok(lambda: "autoscale" not in serve_status().applications, 60)


def serve_status():
    from ray import serve

    return serve.status()


def test_reward_replica_killed_in_flight(svc):
    import ray

    victim = _replica("RewardModel")

    def one(i):
        with httpx.Client(timeout=120, headers=svc.auth) as c:
            time.sleep(0.01 * (i % 20))
            return c.post(svc.url + "/v1/reward", json={"items": PAIRS})

    with ThreadPoolExecutor(48) as pool:
        futures = [pool.submit(one, i) for i in range(96)]
        time.sleep(0.3)
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        replies = [f.result() for f in futures]
    codes = [r.status_code for r in replies]
    assert len(codes) == 96 and set(codes) <= {200, 503}, codes  # clean failures, no 500s
    assert all(r.headers.get("retry-after") for r in replies if r.status_code == 503)
    with httpx.Client(timeout=60, headers=svc.auth) as c:
        _wait_ok(
            lambda: c.post(svc.url + "/v1/reward", json={"items": PAIRS}).status_code == 200, 120
        )
        assert c.get(svc.url + "/healthz").status_code == 200
    assert _replica("RewardModel") != victim


def test_dead_judge_engine_fails_health_and_is_replaced(svc):
    victim = _replica("Judge")
    engines = [
        p
        for p in _replica_process("Judge").children(recursive=True)
        if "EngineCore" in " ".join(p.cmdline()) or "EngineCore" in p.name()
    ]
    assert engines, "no vLLM engine process under the judge replica"
    for p in engines:
        p.kill()
    body = {"rubric": "additive5", "samples": 1, "items": PAIRS[:1]}
    seen = []
    with httpx.Client(timeout=120, headers=svc.auth) as c:

        def judged():
            r = c.post(svc.url + "/v1/judge", json=body)
            seen.append(r.status_code)
            return r.status_code == 200 and r.json()["results"][0]["score"] is not None

        _wait_ok(judged, 300)
    assert set(seen) <= {200, 503}, seen
    assert _replica("Judge") != victim


def test_config_file_is_what_serve_reads():
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from tests.conftest import REPO

    data = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())
    ServeDeploySchema.model_validate(data)
    assert data["http_options"] == {"host": "127.0.0.1", "port": 8000, "request_timeout_s": 120}
    names = {d["name"] for d in data["applications"][0]["deployments"]}
    assert names == {"Ingress", "RewardModel", "Judge"}
    assert json.dumps(data).count("max_queued_requests") == 3
