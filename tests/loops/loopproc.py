"""A loop job as ``synth-ray run`` in a process of its own, killed at a point found by watching
its manifests (the loop end-to-end tests share these)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synth_ray.localcluster import kill_cluster

REPO = Path(__file__).resolve().parents[2]

MARK = "SYNTH_RAY_TEST_LOOP"


def cli(job: Path, out: Path) -> subprocess.Popen:
    """The job as ``synth-ray run`` in a process of its own, its output to a log file (a pipe
    nobody reads while the test waits would fill up and block the job)."""
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", PYTHONPATH=str(REPO))
    env[MARK] = str(out)  # Ray's workers inherit it: what the kill finds them by
    env.pop("RAY_ADDRESS", None)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}-run{len(list(out.parent.glob(out.name + '-run*.log')))}.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "synth_ray.cli", "run", str(job), "--set", f"output_dir={out}"],
            cwd=REPO,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc.log, proc.marker = log, str(out)
    return proc


def manifest(out: Path, t: int) -> dict:
    p = out / f"iter_{t}" / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else {}


def stage(out: Path, t: int, name: str) -> str | None:
    return ((manifest(out, t).get("stages") or {}).get(name) or {}).get("status")


def tail(proc: subprocess.Popen) -> str:
    return proc.log.read_text(errors="replace")[-4000:]


def finish(proc: subprocess.Popen, timeout_s: float = 1500) -> None:
    proc.wait(timeout=timeout_s)
    assert proc.returncode == 0, tail(proc)


def kill_when(proc: subprocess.Popen, ready, timeout_s: float = 900) -> None:
    t0 = time.time()
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the job ended before the kill point:\n{tail(proc)}")
        if time.time() - t0 > timeout_s:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the kill point was never reached")
        time.sleep(0.5)
    # the driver and everything it started: its process group, and Ray's workers (which leave
    # the group but keep the marker in their environment)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    left = kill_cluster([proc.pid], marker=proc.marker, var=MARK)
    assert not left, f"processes of the killed run left: {left}"


def lineage(out: Path) -> list[str]:
    """``synth-ray lineage OUT``'s lines, as a user would read them."""
    res = subprocess.run(
        [sys.executable, "-m", "synth_ray.cli", "lineage", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return res.stdout.strip().splitlines()


def assert_rerun_redoes_nothing(job: Path, out: Path, first: dict, stages: list[str]) -> None:
    """Run the finished loop again: every stage of every iteration found done (one attempt
    each), no engine started, a new run id recorded in each manifest."""
    finish(cli(job, out))
    again = json.loads((out / "run.json").read_text())
    assert again["status"] == "succeeded" and again["run_id"] != first["run_id"]
    assert again["engine_starts"] == 0
    for t in range(len(again["counts"]["iterations"])):
        m = manifest(out, t)
        assert all(s["attempts"] == 1 for s in m["stages"].values())
        assert len(m["run_ids"]) == 2
        assert again["counts"]["iterations"][t]["skipped"] == stages
