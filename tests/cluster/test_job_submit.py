"""The WRAP job through ``ray job submit --working-dir .`` on a separate ``ray start --head``.

This is the production path: a head started by ``ray start`` on 127.0.0.1 with Ray 2.60's token
authentication ON (``RAY_AUTH_MODE=token``), the repo uploaded as the job's working dir, the
``synth-ray run`` entrypoint joining the cluster through ``RAY_ADDRESS``.

Isolation from the user's and other tests' Ray:
- the token is generated here and given to every Ray process (head, dashboard, job driver, the
  CLI) through ``RAY_AUTH_TOKEN_PATH`` pointing at a file in a private temp dir; ``~/.ray`` is
  not read or written (the job only succeeds if our token, not ``~/.ray/auth_token``, is used);
- all ports are picked free, Ray's ``--temp-dir`` and ``TMPDIR`` (vLLM's socket files) are in
  the same private temp dir, removed at the end;
- teardown does NOT use ``ray stop``: it kills every Ray process on the machine, including an
  in-process Ray of a concurrent pytest. It kills only this cluster's processes: those in the
  process group of our ``ray start`` (started in a new session), those carrying a marker
  environment variable (Ray workers change process group but inherit the environment), and all
  their descendants (vLLM engine processes).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from synth_ray.localcluster import kill_cluster
from tests.conftest import REPO, free_port

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.vllm]

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")
MARKER_VAR = "SYNTH_RAY_TEST_CLUSTER"
EXCLUDES = [".venv", "outputs", ".git", ".pytest_cache"]
SUBMIT_TIMEOUT_S = 600


@dataclass
class Cluster:
    dashboard: str  # http://127.0.0.1:PORT, for `ray job ...`
    gcs: str  # 127.0.0.1:PORT
    root: Path  # private temp dir (token, Ray temp dir, TMPDIR, inputs, outputs)
    ray_temp: Path
    token: str
    env: dict  # environment of the head and of the `ray job` CLI

    def ray(
        self, *args: str, timeout: float = 120, env: dict | None = None, log: Path | None = None
    ) -> subprocess.CompletedProcess:
        """Run ``ray ARGS``; output captured (or streamed to ``log``)."""
        if log is None:
            return subprocess.run(
                [RAY, *args],
                check=False,
                env=env or self.env,
                cwd=REPO,
                timeout=timeout,
                capture_output=True,
                text=True,
            )
        with open(log, "w") as fh:
            p = subprocess.run(
                [RAY, *args],
                check=False,
                env=env or self.env,
                cwd=REPO,
                timeout=timeout,
                stdout=fh,
                stderr=subprocess.STDOUT,
                text=True,
            )
        p.stdout = log.read_text(errors="replace")
        return p


def _cluster_env(root: Path, token_path: Path, marker: str) -> dict:
    env = dict(os.environ)
    for var in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN"):
        env.pop(var, None)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # the job's entrypoint: synth-ray
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token_path),
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",  # else Ray swaps 127.0.0.1 for the network address
        RAY_USAGE_STATS_ENABLED="0",
        VLLM_CPU_KVCACHE_SPACE="1",
        TOKENIZERS_PARALLELISM="false",
        TMPDIR=str(root / "tmp"),
        **{MARKER_VAR: marker},
    )
    return env


@pytest.fixture(scope="module")
def ray_cluster(tiny_model):
    # Short path: Ray's unix sockets live under --temp-dir (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="srj-", dir="/tmp"))
    (root / "tmp").mkdir()
    token = secrets.token_hex(32)  # what `ray get-auth-token --generate` writes
    token_path = root / "auth_token"
    token_path.write_text(token)
    token_path.chmod(0o600)
    marker = uuid.uuid4().hex
    env = _cluster_env(root, token_path, marker)
    ray_temp = root / "ray"
    gcs_port, dash_port = free_port(), free_port()
    cmd = [
        RAY,
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs_port}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash_port}",
        f"--ray-client-server-port={free_port()}",  # default 10001 / 52365 may be taken
        f"--dashboard-agent-listen-port={free_port()}",
        "--num-cpus=8",
        "--object-store-memory=1000000000",
        "--disable-usage-stats",
        f"--temp-dir={ray_temp}",
    ]
    # New session: the head's daemons stay in the process group of this `ray start`.
    start = subprocess.Popen(
        cmd,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pgid = start.pid
    cluster = Cluster(
        f"http://127.0.0.1:{dash_port}", f"127.0.0.1:{gcs_port}", root, ray_temp, token, env
    )
    try:
        out, _ = start.communicate(timeout=180)
        assert start.returncode == 0, f"ray start failed:\n{out}"
        deadline = time.monotonic() + 90  # the job API answers a little after `ray start`
        while True:
            p = cluster.ray("job", "list", "--address", cluster.dashboard, timeout=60)
            if p.returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"job API not ready:\n{p.stdout}\n{p.stderr}")
            time.sleep(2)
        yield cluster
    finally:
        if start.poll() is None:
            start.kill()
        survivors = kill_cluster({pgid}, marker, MARKER_VAR)
        shutil.rmtree(root, ignore_errors=True)
        assert not survivors, f"Ray processes left behind: {survivors}"


def _input_jsonl(dest: Path) -> Path:
    lines = (REPO / "examples" / "c4_sample.jsonl").read_text(encoding="utf-8").splitlines()[:6]
    lines.append('{"id": "broken", "text": ')  # line 7: malformed JSON -> rejects
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


def _submit(
    cluster: Cluster, name: str, runtime_env: dict
) -> tuple[subprocess.CompletedProcess, str, Path]:
    work = cluster.root / name
    work.mkdir()
    inp = _input_jsonl(work / "input.jsonl")
    out = work / "out"
    submission_id = f"{name}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    p = cluster.ray(
        "job",
        "submit",
        "--address",
        cluster.dashboard,
        "--submission-id",
        submission_id,
        "--working-dir",
        str(REPO),
        "--runtime-env-json",
        json.dumps(runtime_env),
        "--",
        "synth-ray",
        "run",
        "jobs/wrap.yaml",
        "--set",
        f"input={inp}",
        "--set",
        f"output_dir={out}",
        "--set",
        "sampling.max_tokens=16",
        timeout=SUBMIT_TIMEOUT_S,
        log=work / "submit.log",
    )
    print(f"\n[{name}] ray job submit: rc={p.returncode} in {time.monotonic() - started:.0f} s")
    return p, submission_id, out


def _job_status(cluster: Cluster, submission_id: str) -> str:
    """The job's status from the Jobs REST API (the token as a Bearer header), after checking
    that ``ray job status`` agrees."""
    import urllib.request

    p = cluster.ray("job", "status", "--address", cluster.dashboard, submission_id, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    req = urllib.request.Request(
        f"{cluster.dashboard}/api/jobs/{submission_id}",
        headers={"Authorization": f"Bearer {cluster.token}"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        status = json.loads(resp.read())["status"]
    assert f"'{submission_id}' {status.lower()}" in p.stdout + p.stderr, p.stdout + p.stderr
    return status


def test_token_auth_is_enforced(ray_cluster):
    """The head really runs in token mode: a wrong token is refused, the right one accepted."""
    wrong = ray_cluster.root / "wrong_token"
    wrong.write_text(secrets.token_hex(32))
    env = dict(ray_cluster.env, RAY_AUTH_TOKEN_PATH=str(wrong))
    p = ray_cluster.ray("job", "list", "--address", ray_cluster.dashboard, env=env, timeout=60)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "auth" in (p.stdout + p.stderr).lower(), p.stdout + p.stderr
    p = ray_cluster.ray("job", "list", "--address", ray_cluster.dashboard, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_wrap_job_submit_succeeds(ray_cluster):
    home_token = Path.home() / ".ray" / "auth_token"
    home_before = home_token.read_bytes() if home_token.exists() else None

    # VLLM_CPU_KVCACHE_SPACE in the job's runtime env as well as the engine's own: the engine
    # must not ask Ray to merge a key the job already sets (Ray refuses even equal values).
    p, sid, out = _submit(
        ray_cluster, "wrap", {"excludes": EXCLUDES, "env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1"}}
    )
    assert p.returncode == 0, f"ray job submit failed:\n{p.stdout[-8000:]}"
    assert f"Job '{sid}' succeeded" in p.stdout, p.stdout[-4000:]
    assert _job_status(ray_cluster, sid) == "SUCCEEDED"
    listing = ray_cluster.ray("job", "list", "--address", ray_cluster.dashboard, timeout=60)
    assert listing.returncode == 0 and sid in listing.stdout, listing.stdout + listing.stderr

    # The working dir upload held the repo, not its 3 GB .venv.
    pkgs = {
        p.resolve()
        for p in ray_cluster.ray_temp.glob(
            "session_*/runtime_resources/working_dir_files/_ray_pkg_*"
        )
        if p.is_dir()
    }
    assert pkgs, "no working_dir package unpacked on the node"
    for pkg in pkgs:
        assert (pkg / "jobs" / "wrap.yaml").exists() and (pkg / "synth_ray" / "cli.py").exists()
        assert not (pkg / ".venv").exists() and not (pkg / ".git").exists()
        size = sum(f.stat().st_size for f in pkg.rglob("*") if f.is_file())
        assert size < 20 * 2**20, f"working_dir upload is {size} bytes"

    _assert_wrap_outputs(out, "wrap")

    # Our token file was used; the user's ~/.ray/auth_token was not touched.
    if home_before is not None:
        assert home_token.read_bytes() == home_before


def _assert_wrap_outputs(out: Path, name: str) -> dict:
    """The WRAP run in ``out`` succeeded and accounts for every input line of ``_input_jsonl``
    (6 documents rephrased in 4 styles, line 7 rejected as malformed); returns run.json."""
    import pyarrow.parquet as pq

    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "succeeded", run.get("error")
    c = run["counts"]
    print(
        f"[{name}] counts: {json.dumps({k: v for k, v in c.items() if k != 'mix'})}, "
        f"timings_s: {run.get('timings_s')}"
    )
    assert c["documents"] == 6
    assert c["chunks"] >= 6
    assert c["requested"] == 4 * c["chunks"]
    assert c["generated"] == 4 * c["chunks"]

    data = pq.read_table(out / "data")
    assert data.num_rows == c["generated"]
    assert set(data.column("style").to_pylist()) == {"easy", "medium", "hard", "qa"}
    assert len(set(data.column("chunk_id").to_pylist())) == c["chunks"]

    rejects = pq.read_table(out / "rejects" / "rejects.parquet").to_pylist()
    assert any(r["line"] == 7 and r["reason"] == "malformed_json" for r in rejects), rejects
    assert c["rejected"] == len(rejects)

    mix = pq.read_table(out / "mix")
    origins = mix.column("origin").to_pylist()
    n_real, n_syn = origins.count("real"), origins.count("synthetic")
    assert n_real == n_syn > 0 and n_real + n_syn == mix.num_rows, (n_real, n_syn, mix.num_rows)
    assert c["mix"]["real"] == n_real and c["mix"]["synthetic"] == n_syn
    return run
