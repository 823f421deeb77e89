"""The hostile corpus (``hostile/``): each program contained, reported as a failed sample with its
reason, and without a trace on the machine; the process running the verifier goes on.

Real sandbox processes, short limits (3 s wall, 1 CPU second, 256 MiB, 1 MiB files, 8
processes). The fork bomb and the memory bomb only run after the limits were seen to hold on
harmless programs (``test_sandbox.py``; here ``test_limits_hold_before_bombs`` runs first).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from synth_ray.stages.verify.code_verifier import CodeVerifier, CodeVerifierConfig

from .sandbox_util import limits_config, require_isolation, sandbox_processes

HOSTILE = Path(__file__).with_name("hostile")
REPO = Path(__file__).resolve().parents[3]
PROGRAMS = sorted(p.stem for p in HOSTILE.glob("*.py"))
# HumanEval-shaped problem: the hostile program is the whole "solution".
PROBLEM = {
    "prompt": "",
    "entry_point": "f",
    "test": "def check(candidate):\n    assert candidate() == 1\n",
}


def expected(name: str) -> set[str]:
    first = (HOSTILE / f"{name}.py").read_text().splitlines()[0]
    assert first.startswith("# expect:"), name
    return set(first.split(":", 1)[1].split())


@pytest.fixture(scope="module")
def verifier() -> CodeVerifier:
    require_isolation()
    return CodeVerifier(CodeVerifierConfig(sandbox=limits_config(), threads=2))


@pytest.fixture
def bait(tmp_path):
    """What the programs go after: a secret in the parent's HOME, a token in the parent's
    environment, a listening socket, a target path outside the run's directory."""
    home_dir = tempfile.mkdtemp(prefix="synth-ray-hostile-", dir=os.path.expanduser("~"))
    secret = Path(home_dir, "credentials")
    secret.write_text("SECRET-" + os.urandom(8).hex())
    token = "tok-" + os.urandom(8).hex()
    os.environ["SYNTH_RAY_TEST_TOKEN"] = token
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)
    try:
        yield {
            "secret": secret,
            "token": token,
            "server": srv,
            "target": tmp_path / "outside" / "pwned.txt",
            "home_target": Path(os.path.expanduser("~root"), "synth-ray-pwned"),
            "repo_target": REPO / "PWNED",
        }
    finally:
        srv.close()
        os.environ.pop("SYNTH_RAY_TEST_TOKEN", None)
        shutil.rmtree(home_dir, ignore_errors=True)


def program(name: str, bait: dict) -> str:
    text = (HOSTILE / f"{name}.py").read_text()
    for key, value in (
        ("__SECRET__", str(bait["secret"])),
        ("__PORT__", str(bait["server"].getsockname()[1])),
        ("__TARGET__", str(bait["target"])),
        ("__REPO__", str(REPO)),
    ):
        text = text.replace(key, value)
    return text


def test_limits_hold_before_bombs():
    """Harmless probes of the two limits the bombs rely on: processes and address space."""
    from synth_ray.stages.verify.sandbox import Sandbox

    require_isolation()
    sb = Sandbox(limits_config())
    forks = (
        "import os, time\nn = 0\nfor i in range(30):\n"
        "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n    n += 1\nprint(n)\n"
    )
    r = sb.run({"m.py": forks}, ["m.py"])
    assert r.returncode == 0 and int(r.stdout.split()[-1]) < 8  # the 8-process limit held
    assert sandbox_processes() == []  # the sleeping children were killed with the group
    r = sb.run({"m.py": "x = bytearray(300 * 2**20)\n"}, ["m.py"])
    assert "MemoryError" in r.stderr


@pytest.mark.parametrize("name", PROGRAMS)
def test_hostile_program_contained(name, verifier, bait):
    verdict = verifier.verify(PROBLEM, program(name, bait))
    # The verifier's own process is still here (this line runs) and reports a failed sample.
    assert verdict.reward == 0, verdict
    assert verdict.code in expected(name), verdict.reason
    assert sandbox_processes() == [], f"{name} left processes behind"
    # No trace of the attacks.
    assert bait["secret"].read_text() not in verdict.reason
    assert bait["token"] not in verdict.reason
    for target in ("target", "home_target", "repo_target"):
        assert not bait[target].exists(), f"{name} wrote {bait[target]}"
    with pytest.raises(socket.timeout):
        bait["server"].accept()
    os.kill(os.getpid(), 0)  # still alive


def test_reasons_name_the_attack(verifier, bait):
    """Each failure says what stopped it, in words a person can act on."""
    reasons = {
        name: verifier.verify(PROBLEM, program(name, bait)).reason
        for name in ("network_connect", "read_home_secret", "kill_parent", "read_credentials")
    }
    assert "Network is unreachable" in reasons["network_connect"]
    assert "No such file" in reasons["read_home_secret"]  # the home is an empty tmpfs there
    assert "PermissionError" in reasons["kill_parent"]  # another uid: EPERM
    assert "PermissionError" in reasons["read_credentials"]  # the parent's /proc/PID/environ


def test_no_secret_in_output(bait):
    """The raw output of the credential readers holds neither the secret nor the token."""
    from synth_ray.stages.verify.sandbox import Sandbox

    require_isolation()
    sb = Sandbox(limits_config())
    for name in ("read_home_secret", "read_credentials"):
        r = sb.run({"m.py": program(name, bait)}, ["m.py"])
        assert r.returncode == 1
        out = r.stdout + r.stderr
        assert bait["secret"].read_text() not in out
        assert bait["token"] not in out
        assert "SYNTH_RAY_TEST_TOKEN" not in out


def test_process_group_escape_killed():
    """A child that left the group with setsid is killed by the uid sweep."""
    from synth_ray.stages.verify.sandbox import Sandbox

    require_isolation()
    sb = Sandbox(limits_config())
    code = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
        "    os._exit(0)\nprint('parent done')\n"
    )
    r = sb.run({"m.py": code}, ["m.py"])
    assert r.returncode == 0 and "parent done" in r.stdout
    assert sandbox_processes() == []
