"""The sandbox on harmless programs: every isolation property and limit seen to hold, and the
refusal where isolation is missing. Real processes, no Ray."""

from __future__ import annotations

import json
import os
import sys
import threading

import pytest

from synth_ray.stages.verify import sandbox as sb_mod
from synth_ray.stages.verify.sandbox import (
    Isolation,
    Sandbox,
    SandboxConfig,
    SandboxUnavailable,
    probe,
)

from .sandbox_util import limits_config, require_isolation, sandbox_processes

REPORT = r"""
import json, os, sys, resource
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "cwd": os.getcwd(),
    "env": dict(os.environ), "isolated": sys.flags.isolated, "executable": sys.executable,
    "pid": os.getpid(), "ppid": os.getppid(),
    "limits": {n: resource.getrlimit(getattr(resource, n))[0] for n in
               ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC")},
    "root": sorted(os.listdir("/root")) if os.path.isdir("/root") else None,
    "tmp": sorted(os.listdir("/tmp")),
    "files": sorted(os.listdir(".")),
}))
"""


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    require_isolation()
    return Sandbox(limits_config())


def test_probe_finds_full_isolation_as_root():
    iso = probe(SandboxConfig())
    if os.geteuid() != 0:
        pytest.skip("namespaces and uid change need root (CI and dev machines run as root)")
    assert iso.full, iso.describe()


def test_run_environment(sandbox, monkeypatch):
    monkeypatch.setenv("SYNTH_RAY_SECRET_TOKEN", "tok-123")
    r = sandbox.run({"report.py": REPORT, "data/x.txt": "hi"}, ["report.py"])
    assert r.reason == "ok", r.stderr
    got = json.loads(r.stdout)
    assert got["uid"] != os.getuid() and got["uid"] >= SandboxConfig().uid_base
    assert got["gid"] == got["uid"] and got["groups"] == []
    assert got["isolated"] == 1 and got["executable"] == sys.executable
    assert got["env"] == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": got["cwd"],
        "TMPDIR": got["cwd"],
        "LANG": "C.UTF-8",
    }
    assert sorted(got["files"]) == ["data", "report.py"]
    assert got["pid"] == 2 and got["ppid"] == 1  # its own pid namespace, under the small init
    lim = got["limits"]
    assert lim["RLIMIT_CPU"] == 1 and lim["RLIMIT_AS"] == 256 << 20
    assert lim["RLIMIT_FSIZE"] == 1 << 20 and lim["RLIMIT_NPROC"] == 8
    assert lim["RLIMIT_NOFILE"] == 64
    # Homes and /tmp are empty tmpfs but for the interpreter and the run's own directory.
    assert not os.path.exists(got["cwd"])  # removed afterwards
    keep = sb_mod._keep_paths()  # only what leads to the interpreter is bound back
    leads = {k.split("/")[2] for k in keep if k.startswith("/tmp/")}  # a venv under /tmp (CI)
    assert set(got["tmp"]) == {got["cwd"].split("/")[2]} | leads
    assert all(any(k.startswith(f"/root/{n}/") for k in keep) for n in got["root"] or [])


def test_output_capped(sandbox):
    c = limits_config(output_bytes=1000)
    r = Sandbox(c).run({"m.py": "print('a' * 5000); print('END')"}, ["m.py"])
    assert r.reason == "ok"
    assert len(r.stdout) == 1000 and r.stdout_truncated
    assert r.stdout_tail.strip().endswith("END")


def test_wall_clock_limit_kills_the_group(sandbox):
    code = "import os, time\nfor _ in range(3):\n    os.fork()\ntime.sleep(30)\n"
    r = sandbox.run({"m.py": code}, ["m.py"], wall_s=0.5)
    assert r.timed_out and r.reason == "wall_time_limit"
    assert 0.5 <= r.duration_s < 5.0  # killed at the limit (slack for a loaded machine)
    assert sandbox_processes() == []


def test_runs_from_threads(sandbox):
    """Ray workers run stages in threads: no signal handling in the sandbox."""
    out = []

    def one(i):
        out.append(sandbox.run({"m.py": f"print({i} * 2)"}, ["m.py"]).stdout.strip())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out, key=int) == [str(i * 2) for i in range(6)]


def test_refuses_without_isolation(monkeypatch):
    """Where isolation is missing the sandbox says so at start, and runs only when told to."""
    monkeypatch.setattr(
        sb_mod, "probe", lambda c: Isolation(False, False, False, "not root: no namespaces")
    )
    with pytest.raises(SandboxUnavailable, match="allow_unisolated") as err:
        sb_mod.Sandbox(SandboxConfig())
    assert "missing: network, mounts, uid" in str(err.value)
    unsafe = sb_mod.Sandbox(limits_config(allow_unisolated=True))
    r = unsafe.run({"m.py": "import os; print(os.getuid())"}, ["m.py"])
    assert r.reason == "ok" and int(r.stdout) == os.getuid()  # no uid change: the opt-out


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="extra"):
        SandboxConfig(wall_seconds=3)
