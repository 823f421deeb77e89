"""``synth-ray serve serve/config.yaml`` as a user starts it: its own embedded Ray, the token
from ``SYNTH_RAY_SERVE_TOKEN``, HTTP on 127.0.0.1. A config error stops it before anything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from synth_ray.localcluster import kill_cluster
from tests.conftest import REPO, free_port

SYNTH_RAY = str(Path(sys.executable).parent / "synth-ray")
MARKER = "SYNTH_RAY_TEST_SERVE"


def test_config_error_names_the_field_and_starts_nothing():
    t0 = time.monotonic()
    p = subprocess.run(
        [SYNTH_RAY, "serve", "serve/config.yaml", "--set", "limits.max_item=3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2
    assert "field 'limits.max_item': unknown field" in p.stderr
    assert "Started a local Ray" not in p.stderr + p.stdout
    assert time.monotonic() - t0 < 60


@pytest.mark.slow
@pytest.mark.serve  # judge=null: the reward model only, no vLLM
def test_serve_cli_with_env_token():
    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="srv-", dir="/tmp"))  # Ray's socket paths are short
    try:
        _serve_cli(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _serve_cli(tmp_path: Path) -> None:
    token = "env-" + uuid.uuid4().hex
    port = free_port()
    marker = uuid.uuid4().hex
    env = dict(
        os.environ,
        SYNTH_RAY_SERVE_TOKEN=token,
        RAY_TMPDIR=str(tmp_path / "ray"),
        TMPDIR=str(tmp_path),
        **{MARKER: marker},
    )
    env.pop("RAY_ADDRESS", None)
    (tmp_path / "ray").mkdir()
    log = tmp_path / "serve.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [SYNTH_RAY, "serve", "serve/config.yaml", "--port", str(port), "--set", "judge=null"],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            raise AssertionError("service not healthy in 300 s:\n" + log.read_text()[-3000:])
        body = {"items": [{"prompt": "Hi", "response": "Hello!"}]}
        assert httpx.post(url + "/v1/reward", json=body, timeout=60).status_code == 401
        r = httpx.post(
            url + "/v1/reward", json=body, timeout=60, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200 and r.json()["model"] == "tiny-reward", r.text
        r = httpx.post(
            url + "/v1/judge",
            json={"rubric": "additive5", "items": body["items"]},
            timeout=60,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 404  # judge: null
        for _ in range(30):  # the CLI polls Serve's status every second before it says so
            if f"serving scoring at {url}" in log.read_text():
                break
            time.sleep(1)
        assert f"serving scoring at {url}" in log.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
        assert "synth-ray: stopped" in log.read_text()
    finally:
        survivors = kill_cluster({proc.pid}, marker, MARKER)
    assert survivors == []
    # The token is in no log: the CLI's output nor the Ray session's files (Serve's included).
    ray_files = [p for p in (tmp_path / "ray").rglob("*") if p.is_file()]
    assert any("serve" in str(p) and p.suffix == ".log" for p in ray_files), ray_files[:20]
    for p in [log, *ray_files]:
        if p.is_file():
            assert token.encode() not in p.read_bytes(), p
