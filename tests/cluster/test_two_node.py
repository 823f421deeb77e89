"""The WRAP job on a local TWO-node Ray started by ``cluster/local.sh``.

``cluster/local.sh up`` starts a head with ``--num-cpus=0`` (it schedules no work, as the head
in ``k8s/``) and a second node with 8 logical CPUs, each its own ``ray start`` on 127.0.0.1 with
token auth. Any task or actor that needs a CPU therefore has to run on the worker node; the
tests check that it did, through Ray's state API (node ids of the job's tasks and actors).

Isolation as in ``test_job_submit.py`` (whose helpers this reuses): a private state dir (token,
Ray temp dir, TMPDIR), free ports, and a teardown that kills only this cluster's processes
(``local.sh down``: its two process groups and everything carrying its marker variable), then
checks that nothing of it is left.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from synth_ray.localcluster import cluster_processes, kill_cluster
from tests.cluster.test_job_submit import (
    EXCLUDES,
    VENV_BIN,
    Cluster,
    _assert_wrap_outputs,
    _cluster_env,
    _submit,
)
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.vllm]

LOCAL_SH = REPO / "cluster" / "local.sh"
LOCAL_MARKER_VAR = "SYNTH_RAY_LOCAL_CLUSTER"  # set by local.sh on every process of its cluster
# Named get_if_exists actors of Ray Data and ray.data.llm, one per cluster, shared by its jobs.
RAY_SINGLETON_ACTORS = {
    "_StatsActor",
    "_AutoscalingCoordinatorActor",
    "ActorLocationTracker",
    "_TelemetryAgent",
}
RUNTIME_ENV = {"excludes": EXCLUDES, "env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1"}}


def _read_kv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.removeprefix("export ").strip()
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


class TwoNode(Cluster):
    marker: str
    pgids: set[int]
    head_id: str
    worker_id: str

    def procs(self) -> list:
        return cluster_processes(self.pgids, self.marker, LOCAL_MARKER_VAR)

    def state(self, *args: str) -> list[dict]:
        """``ray list ARGS --format json`` against this cluster."""
        p = self.ray("list", *args, "--format", "json", "--address", self.dashboard, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        return json.loads(p.stdout) if p.stdout.strip() else []  # nothing: prints nothing


@pytest.fixture(scope="module")
def two_node(tiny_model):
    root = Path(tempfile.mkdtemp(prefix="srl-", dir="/tmp"))  # short: Ray's unix sockets
    base = _cluster_env(root, root / "auth_token", uuid.uuid4().hex)  # PATH, TMPDIR, no RAY_*
    base.pop("RAY_AUTH_TOKEN_PATH")  # local.sh makes its own token in its dir
    base.update(SYNTH_RAY_LOCAL_DIR=str(root), RAY=str(VENV_BIN / "ray"))
    state: dict[str, str] = {}

    def local_sh(cmd: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(LOCAL_SH), cmd],
            env=base,
            cwd=REPO,
            timeout=timeout,
            capture_output=True,
            text=True,
            check=False,
        )

    try:
        started = time.monotonic()
        up = local_sh("up", 300)
        state = _read_kv(root / "state") if (root / "state").exists() else {}
        pgids = (
            {int(x) for x in (root / "pgids").read_text().split()}
            if (root / "pgids").exists()
            else set()
        )
        assert up.returncode == 0, f"local.sh up failed:\n{up.stdout}\n{up.stderr}"
        print(f"\n[two-node] local.sh up in {time.monotonic() - started:.0f} s")
        env_file = _read_kv(root / "env")
        env = _cluster_env(root, Path(env_file["RAY_AUTH_TOKEN_PATH"]), uuid.uuid4().hex)
        cluster = TwoNode(
            env_file["RAY_ADDRESS"],
            env_file["SYNTH_RAY_LOCAL_GCS"],
            root,
            root / "ray",
            Path(env_file["RAY_AUTH_TOKEN_PATH"]).read_text(),
            env,
        )
        cluster.marker, cluster.pgids = state["MARKER"], pgids
        nodes = [n for n in cluster.state("nodes") if n["state"] == "ALIVE"]
        assert len(nodes) == 2, nodes
        assert {n["node_ip"] for n in nodes} == {"127.0.0.1"}, nodes
        head = [n for n in nodes if n["is_head_node"]]
        worker = [n for n in nodes if not n["is_head_node"]]
        assert len(head) == 1 and len(worker) == 1, nodes
        assert head[0]["resources_total"].get("CPU", 0) == 0, head  # the head schedules no work
        assert worker[0]["resources_total"]["CPU"] == 8, worker
        cluster.head_id, cluster.worker_id = head[0]["node_id"], worker[0]["node_id"]
        yield cluster
    finally:
        down = local_sh("down", 180)
        survivors = []
        if state:
            survivors = kill_cluster(pgids, state["MARKER"], LOCAL_MARKER_VAR)
        shutil.rmtree(root, ignore_errors=True)
        assert down.returncode == 0, f"local.sh down:\n{down.stdout}\n{down.stderr}"
        assert not survivors, f"local.sh down left processes behind: {survivors}"


def _job_id(cluster: TwoNode, submission_id: str) -> str:
    jobs = [j for j in cluster.state("jobs", "--detail") if j.get("submission_id") == submission_id]
    assert len(jobs) == 1 and jobs[0].get("job_id"), jobs
    return jobs[0]["job_id"]


def _needs_resources(entry: dict) -> bool:
    req = entry.get("required_resources") or {}
    return any(v > 0 for k, v in req.items() if k in ("CPU", "GPU") or not k.startswith("node:"))


def test_wrap_on_two_nodes_runs_on_the_worker(two_node):
    p, sid, out = _submit(two_node, "wrap2", RUNTIME_ENV)
    assert p.returncode == 0, f"ray job submit failed:\n{p.stdout[-8000:]}"
    assert f"Job '{sid}' succeeded" in p.stdout, p.stdout[-4000:]
    _assert_wrap_outputs(out, "wrap2")

    job_id = _job_id(two_node, sid)
    actors = two_node.state(
        "actors", "--detail", "--filter", f"job_id={job_id}", "--limit", "10000"
    )
    tasks = two_node.state("tasks", "--detail", "--filter", f"job_id={job_id}", "--limit", "10000")
    placed = [
        (a.get("class_name"), a.get("node_id"), a.get("required_resources"))
        for a in actors
        if _needs_resources(a)
    ]
    placed += [
        (t.get("name"), t.get("node_id"), t.get("required_resources"))
        for t in tasks
        if _needs_resources(t) and t.get("node_id")
    ]
    print(
        f"[wrap2] {len(actors)} actors, {len(tasks)} tasks of job {job_id}; "
        f"{len(placed)} need resources, e.g. {sorted({p[0] for p in placed})[:12]}"
    )
    assert placed, (actors, tasks)
    on_head = [p for p in placed if p[1] != two_node.worker_id]
    assert not on_head, f"work placed off the worker node {two_node.worker_id}: {on_head}"
    # The vLLM engine itself (an actor holding CPU bundles) ran on the worker.
    assert any(a.get("node_id") == two_node.worker_id and _needs_resources(a) for a in actors), (
        actors
    )


def _leftovers(cluster: TwoNode, baseline: set[int]) -> list[str]:
    """Processes of this cluster that appeared after ``baseline`` and are not idle Ray workers:
    the job driver, vLLM engine processes, ray:: actor/task workers."""
    import psutil

    left = []
    for p in cluster.procs():
        try:
            if p.pid in baseline or p.status() == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.cmdline())
            if cmd.startswith("ray::IDLE"):
                continue
            left.append(f"{p.pid} {p.name()} {cmd[:160]}")
        except psutil.Error:
            pass
    return left


def _engine_processes(cluster: TwoNode) -> list[str]:
    import psutil

    found = []
    for p in cluster.procs():
        try:
            text = p.name() + " " + " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "EngineCore" in text:
            found.append(f"{p.pid} {text[:120]}")
    return found


def test_job_stop_leaves_no_engine_processes(two_node):
    baseline = {p.pid for p in two_node.procs()}
    work = two_node.root / "stop"
    work.mkdir()
    docs = (REPO / "examples" / "c4_sample.jsonl").read_text(encoding="utf-8")
    (work / "input.jsonl").write_text(docs * 4, encoding="utf-8")  # long enough to be stopped
    sid = f"stop-{uuid.uuid4().hex[:8]}"
    p = two_node.ray(
        "job",
        "submit",
        "--address",
        two_node.dashboard,
        "--submission-id",
        sid,
        "--no-wait",
        "--working-dir",
        str(REPO),
        "--runtime-env-json",
        json.dumps(RUNTIME_ENV),
        "--",
        "synth-ray",
        "run",
        "jobs/wrap.yaml",
        "--set",
        f"input={work / 'input.jsonl'}",
        "--set",
        f"output_dir={work / 'out'}",
        "--set",
        "sampling.max_tokens=512",
        timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr

    started, engines = time.monotonic(), []
    while not engines:  # wait for the job's vLLM engine process
        engines = _engine_processes(two_node)
        status = two_node.ray("job", "status", "--address", two_node.dashboard, sid, timeout=60)
        out_ = (status.stdout + status.stderr).lower()
        assert "succeeded" not in out_ and "failed" not in out_, (
            f"job ended before its engine was seen:\n{status.stdout}"
        )
        assert time.monotonic() - started < 400, "no vLLM EngineCore process after 400 s"
        time.sleep(1)
    time.sleep(5)  # the engine is up (or loading the model): stop it mid-flight
    print(f"\n[stop] engine processes after {time.monotonic() - started:.0f} s: {engines}")
    assert _job_id(two_node, sid)

    stopped_at = time.monotonic()
    p = two_node.ray("job", "stop", "--address", two_node.dashboard, sid, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    # What may stay: Ray's own per-cluster singletons, named actors that the first Ray Data /
    # ray.data.llm job on a cluster creates with get_if_exists and every later job reuses (all
    # detached but the LLM telemetry agent). They hold no engine. Every other process of the job
    # (its driver, Ray Data workers, the vLLM actor and its EngineCore) must be gone.
    deadline, left, singletons = time.monotonic() + 60, ["?"], {}
    while left and time.monotonic() < deadline:  # grace period: Ray reaps the job's workers
        time.sleep(2)
        alive = two_node.state("actors", "--detail", "--filter", "state=ALIVE", "--limit", "10000")
        singletons = {
            a["pid"]: a["class_name"]
            for a in alive
            if a.get("name") and a["class_name"] in RAY_SINGLETON_ACTORS
        }
        left = [
            line
            for line in _leftovers(two_node, baseline)
            if int(line.split()[0]) not in singletons
        ]
    print(f"[stop] ray job stop + cleanup in {time.monotonic() - stopped_at:.0f} s; left: {left}")
    status = two_node.ray("job", "status", "--address", two_node.dashboard, sid, timeout=60)
    assert "stopped" in (status.stdout + status.stderr).lower(), status.stdout + status.stderr
    assert not _engine_processes(two_node), "vLLM engine processes orphaned by `ray job stop`"
    print(f"[stop] Ray's singleton actors alive (not the job's): {sorted(singletons.values())}")
    assert not left, f"processes of the stopped job left behind: {left}"
    job_id = _job_id(two_node, sid)
    of_job = [a for a in alive if a.get("job_id") == job_id and a["pid"] not in singletons]
    assert not of_job, of_job
