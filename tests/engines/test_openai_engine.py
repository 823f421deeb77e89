"""The `openai` engine against a real OpenAI-compatible server (vLLM's, on the tiny model,
started here on 127.0.0.1), and its retry policy against a scripted local HTTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pyarrow as pa
import pytest

from synth_ray.engines import build_engine
from synth_ray.engines.base import GENERATION_COLUMNS, SamplingConfig
from synth_ray.engines.openai_engine import _OpenAIWorker
from synth_ray.models.resolve import ResolvedModel

from ..conftest import REPO, free_port


@pytest.fixture(scope="module")
def vllm_server(tiny_model, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1")
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        tiny_model,
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enforce-eager",
        "--max-model-len",
        "2048",
        # asks for AMX permission in the server's worker (a SIGILL on a one-token first prompt
        # otherwise, on AMX CPUs: synth_ray.engines.vllm_worker_ext.request_amx)
        "--worker-extension-cls",
        "synth_ray.engines.vllm_worker_ext.WeightProbe",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(base + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            pytest.fail(f"vLLM server not ready: {log.read_text()[-3000:]}")
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _requests(kind: str, n: int, max_tokens: int = 12) -> pa.Table:
    sampling = SamplingConfig(max_tokens=max_tokens, temperature=0.8, seed=1).to_json()
    rows = []
    for i in range(n):
        row = {"id": f"{kind}-{i}", "sampling": sampling, "keep": i}
        if kind == "messages":
            row["messages"] = [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"Say something about {i}."},
            ]
        else:
            row["prompt"] = f"USER: tell me about the number {i}. ASSISTANT:"
        rows.append(row)
    return pa.Table.from_pylist(rows)


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("kind", ["prompt", "messages"])
def test_generates_through_ray_data(ray_local, vllm_server, kind):
    import ray.data

    engine = build_engine(
        {"type": "openai", "base_url": vllm_server, "max_concurrency": 4, "batch_size": 8},
        ResolvedModel("tiny", "tiny", "served"),
    )
    engine.preflight()
    table = _requests(kind, 12)
    if kind == "prompt":  # one row over the context length: an error row, the rest go on
        table = pa.concat_tables(
            [
                table,
                pa.Table.from_pylist(
                    [
                        {
                            "id": "too-long",
                            "sampling": SamplingConfig(max_tokens=8).to_json(),
                            "keep": 99,
                            "prompt": "word " * 5000,
                        }
                    ],
                    schema=table.schema,
                ),
            ]
        )
    out = engine.generate(ray.data.from_arrow(table), kind).take_all()
    assert len(out) == table.num_rows
    assert all(set(GENERATION_COLUMNS) <= set(r) for r in out)  # the engine contract
    by_id = {r["id"]: r for r in out}
    for i in range(12):
        r = by_id[f"{kind}-{i}"]
        assert r["error"] is None, r["error"]
        assert r["keep"] == i and r["model"] == "tiny"
        assert r["completion_tokens"] > 0 and r["prompt_tokens"] > 0
        assert r["finish_reason"] in ("stop", "length")
    if kind == "prompt":
        bad = by_id["too-long"]
        assert bad["finish_reason"] == "error" and "HTTP 400" in bad["error"]
        assert bad["error"].startswith("invalid_request: ")  # final: a rerun won't resend it


@pytest.mark.slow
@pytest.mark.vllm
def test_preflight_fails_for_unknown_model(vllm_server):
    engine = build_engine(
        {"type": "openai", "base_url": vllm_server}, ResolvedModel("gpt-9", "gpt-9", "served")
    )
    with pytest.raises(RuntimeError, match="not served"):
        engine.preflight()


@pytest.mark.slow
@pytest.mark.vllm
def test_wrap_job_through_openai_engine(ray_local, vllm_server, tmp_path):
    from synth_ray.runner import load_job_config, run_job

    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": f"Document {i}. It has two sentences."}) + "\n"
            for i in range(3)
        )
    )
    cfg = load_job_config(
        str(REPO / "jobs/wrap.yaml"),
        [
            f"input={docs}",
            f"output_dir={tmp_path / 'out'}",
            "engine.type=openai",
            f"engine.base_url={vllm_server}",
            "sampling.max_tokens=8",
        ],
    )
    record = run_job(cfg)
    assert record["status"] == "succeeded"
    assert record["counts"]["generated"] == 12 and record["counts"]["generation_errors"] == 0
    assert record["engine_starts"] == 0


class _Scripted(BaseHTTPRequestHandler):
    script: list = []
    calls: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append((self.path, body, self.headers.get("Authorization")))
        status, headers = type(self).script.pop(0) if type(self).script else (200, {})
        payload = (
            {
                "choices": [{"text": "ok", "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            }
            if status == 200
            else {"error": "x"}
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    _Scripted.calls = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _worker(base_url, **kw):
    config = {
        "type": "openai",
        "base_url": base_url,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        **kw,
    }
    return _OpenAIWorker(config, "m", "m", "prompt")


def test_retries_429_and_5xx_then_succeeds(scripted, monkeypatch):
    server, base = scripted
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    _Scripted.script = [(429, {"Retry-After": "0"}), (503, {}), (200, {})]
    out = _worker(base, max_retries=3)(_requests("prompt", 1)).to_pylist()[0]
    assert out["error"] is None and out["completion"] == "ok" and out["prompt_tokens"] == 3
    assert len(_Scripted.calls) == 3
    assert all(auth == "Bearer sk-test" for _, _, auth in _Scripted.calls)
    assert _Scripted.calls[0][1]["model"] == "m" and _Scripted.calls[0][1]["max_tokens"] == 12


def test_gives_up_after_max_retries(scripted):
    _, base = scripted
    _Scripted.script = [(500, {})] * 10
    out = _worker(base, max_retries=2)(_requests("prompt", 1)).to_pylist()[0]
    assert out["finish_reason"] == "error" and "gave up after 3 attempts" in out["error"]
    assert not out["error"].startswith("invalid_request")  # transient: retried next run
    assert len(_Scripted.calls) == 3


def test_client_error_not_retried(scripted):
    _, base = scripted
    _Scripted.script = [(400, {})]
    out = _worker(base, max_retries=5)(_requests("prompt", 2)).to_pylist()
    assert sum(1 for r in out if r["error"] and "HTTP 400" in r["error"]) == 1
    assert len(_Scripted.calls) == 2  # one failed without retry, one succeeded


def test_unreachable_endpoint_is_an_error_row():
    port = free_port()  # nothing listens there
    out = _worker(f"http://127.0.0.1:{port}/v1", max_retries=1)(_requests("prompt", 1)).to_pylist()[
        0
    ]
    assert "connection error" in out["error"]


def test_json_schema_sent_as_response_format(scripted):
    _, base = scripted
    table = _requests("prompt", 1)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    table = table.set_column(
        table.schema.get_field_index("sampling"),
        "sampling",
        pa.array([SamplingConfig(json_schema=schema).to_json()]),
    )
    _worker(base)(table)
    sent = _Scripted.calls[0][1]
    assert sent["response_format"]["json_schema"]["schema"] == schema


@pytest.mark.slow
@pytest.mark.vllm
def test_alpaca_job_distils_from_an_endpoint(ray_local, vllm_server, tmp_path):
    """Distillation as the papers did it: the teacher is an OpenAI-compatible server (here
    vLLM's, on the tiny model); structured output travels as `response_format`."""
    from synth_ray.runner import load_job_config, run_job

    config = load_job_config(
        str(REPO / "jobs/tiny/alpaca.yaml"),
        [
            f"output_dir={tmp_path}",
            "target_instructions=6",
            "requests_per_round=4",
            f'engine={{type: openai, base_url: "{vllm_server}", max_concurrency: 4}}',
        ],
    )
    rec = run_job(config)
    assert rec["status"] == "succeeded" and rec["engine_starts"] == 0  # nothing started locally
    assert rec["counts"]["dataset_rows"] == 6
    gen = rec["counts"]["generation"]["alpaca"]
    assert gen["generated"] == gen["requested"] and rec["tokens"]["completion"] > 0
