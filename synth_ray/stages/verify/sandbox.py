"""Run untrusted, model-written programs: never in the calling (Ray worker) process.

ReST-EM (survey, "Synthetic data for instruction-tuning") rewards code by running the model's
program against test cases; at scale that means running untrusted code on the cluster. Each
``Sandbox.run`` is one fresh process, started by ``_launch.py`` in a new session (its own process
group), that before executing the program:

- enters a new network namespace (no interface is up: every connect fails, loopback included)
  and a new mount namespace in which tmpfs cover the home directories (``/root``, ``/home``, the
  worker's ``$HOME``) and the world-writable ones (``/tmp``, ``/var/tmp``, ``/dev/shm``): writes
  outside the run's directory land in a namespace-private tmpfs that vanishes with the run, and
  credentials in the homes are not there to read; the run's directory and the interpreter's
  installation are bound back;
- sets resource limits: CPU seconds, address space, file size (which also caps what it can print,
  as its output goes to files), open files, processes (counted per uid), no core files;
- drops to an unprivileged uid of its own, drawn per run (so the process limit is per run, and the
  program can signal neither its parent nor another run's processes);
- runs the same interpreter with ``-I`` (isolated mode: no user site, no ``PYTHON*`` variables) in
  its own temporary directory, which is also its ``HOME`` and ``TMPDIR``, with an empty
  environment but a minimal ``PATH`` (no tokens or keys of the worker).

A wall-clock limit kills the whole process group (``os.killpg``, SIGKILL); then every process
left with the run's uid (one that left the group with ``setsid``) is killed too. The directory
is removed afterwards. Output is read back up to ``output_bytes`` per stream.

Namespaces and the uid change need root (as on these machines: ``unshare -n`` works as root).
``probe`` checks at start what works here; where isolation is missing, ``Sandbox`` refuses to run
code, saying what is missing, unless the config opts out with ``allow_unisolated: true``.
Nothing here uses signals or ``signal.alarm``: it runs from any thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from synth_ray.config import StrictModel

LAUNCH = str(Path(__file__).with_name("_launch.py"))
LAUNCH_FAILED = 121
MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxConfig(StrictModel):
    wall_s: float = Field(
        10.0, gt=0, description="Wall-clock seconds before the whole run is killed."
    )
    cpu_s: int = Field(5, ge=1, description="CPU seconds (RLIMIT_CPU): SIGXCPU, then SIGKILL.")
    memory_mb: int = Field(
        1024, ge=64, description="Address space in MiB (RLIMIT_AS): allocations beyond it fail."
    )
    file_size_mb: int = Field(
        16, ge=1, description="Largest file it may write, in MiB (RLIMIT_FSIZE); bounds its output."
    )
    open_files: int = Field(64, ge=16, description="Open file descriptors (RLIMIT_NOFILE).")
    processes: int = Field(
        16, ge=1, description="Processes of the run's own uid (RLIMIT_NPROC): bounds a fork bomb."
    )
    output_bytes: int = Field(
        65536, ge=256, description="Bytes of stdout and of stderr kept; the rest is dropped."
    )
    tmpfs_mb: int = Field(
        16, ge=1, description="Size of each tmpfs covering a hidden or world-writable directory."
    )
    hide_dirs: list[str] = Field(
        ["/root", "/home", "/tmp", "/var/tmp", "/dev/shm"],
        description="Directories covered by an empty private tmpfs in the run (the worker's "
        "$HOME is added); the run's own directory and the interpreter are bound back.",
    )
    uid_base: int = Field(
        200_000, ge=1000, description="First uid of the range runs draw their own uid from."
    )
    uid_count: int = Field(100_000, ge=1, description="Size of that uid range.")
    allow_unisolated: bool = Field(
        False,
        description="Run code even where this machine allows no network namespace, mount "
        "namespace or uid change (not root): the program then has the network, sees the files "
        "the worker sees, and runs as the worker's uid. Off: the sandbox refuses at start, "
        "saying what is missing.",
    )


class SandboxUnavailable(RuntimeError):
    """The machine cannot isolate programs and the config did not opt out."""


@dataclass(frozen=True)
class Isolation:
    network: bool
    mounts: bool
    user: bool
    detail: str = ""

    @property
    def full(self) -> bool:
        return self.network and self.mounts and self.user

    def describe(self) -> str:
        have = [n for n, ok in (("network", self.network), ("mounts", self.mounts)) if ok]
        if self.user:
            have.append("uid")
        missing = [n for n in ("network", "mounts", "uid") if n not in have]
        return f"isolation: {', '.join(have) or 'none'}" + (
            f"; missing: {', '.join(missing)} ({self.detail})" if missing else ""
        )


@dataclass
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_tail: str = ""  # the last bytes of stdout (up to 256), kept even when truncated
    stderr_tail: str = ""  # the same for stderr (a traceback's last line)
    extra: dict = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """ok, wall_time_limit, cpu_time_limit, file_size_limit, killed_by_SIG..., exit_status_N,
        sandbox_error: ..."""
        if self.timed_out:
            return "wall_time_limit"
        rc = self.returncode
        if rc == LAUNCH_FAILED and "sandbox-launch:" in self.stderr:
            return "sandbox_error: " + self.stderr.split("sandbox-launch:", 1)[1].strip()[:200]
        if rc < 0:
            sig = -rc
            if sig == signal.SIGXCPU:
                return "cpu_time_limit"
            if sig == signal.SIGXFSZ:
                return "file_size_limit"
            try:
                return f"killed_by_{signal.Signals(sig).name}"
            except ValueError:
                return f"killed_by_signal_{sig}"
        return "ok" if rc == 0 else f"exit_status_{rc}"


def _python() -> str:
    return sys.executable


def _keep_paths() -> list[str]:
    """The interpreter's directories, bound back where a hidden directory covers them."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    return sorted(p for p in paths if p)


def _is_zombie(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def sweep_uid(uid: int, rounds: int = 100) -> int:
    """SIGKILL every live process of ``uid`` (ones that left the process group); how many."""
    if uid in (0, os.getuid()):
        raise ValueError(f"refusing to sweep uid {uid}")
    killed = 0
    for _ in range(rounds):
        found = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.stat(f"/proc/{pid}").st_uid != uid or _is_zombie(pid):
                    continue
                os.kill(int(pid), signal.SIGKILL)
                found += 1
            except (FileNotFoundError, ProcessLookupError):
                continue
        killed += found
        if not found:
            return killed
        time.sleep(0.01)
    return killed


_PROBES: dict = {}
_PROBE_LOCK = threading.Lock()
_PROBE_CODE = r"""
import os, socket
res = {"uid": os.getuid()}
try:
    socket.create_connection(("127.0.0.1", int(os.environ["PROBE_PORT"])), timeout=1).close()
    res["network"] = True
except OSError:
    res["network"] = False
res["secret_visible"] = os.path.exists(os.environ["PROBE_SECRET"])
print(__import__("json").dumps(res))
"""


class Sandbox:
    """Runs programs in fresh, limited, isolated processes; thread-safe."""

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        self.isolation = probe(self.config)
        if not self.isolation.full and not self.config.allow_unisolated:
            raise SandboxUnavailable(
                f"the sandbox cannot isolate programs on this machine ({self.isolation.describe()}); "
                "refusing to run untrusted code. Run as root where `unshare -n` works, or set "
                "allow_unisolated: true to run it anyway (unsafe)."
            )

    def run(
        self,
        files: dict[str, str],
        argv: list[str],
        stdin: str = "",
        *,
        wall_s: float | None = None,
    ) -> SandboxResult:
        """Write ``files`` into a fresh directory and run ``python -I *argv`` there."""
        return _run(self.config, self.isolation, files, argv, stdin, wall_s=wall_s)


def _spec(c: SandboxConfig, iso: Isolation, work: str, argv: list[str], uid: int | None) -> dict:
    hide = list(dict.fromkeys(c.hide_dirs + [os.path.expanduser("~")])) if iso.mounts else []
    env = {"PATH": MINIMAL_PATH, "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"}
    return {
        "network": iso.network,
        "pidns": iso.mounts,
        "hide": hide,
        "keep": [*_keep_paths(), work],
        "tmpfs_mb": c.tmpfs_mb,
        "limits": {
            "cpu_s": c.cpu_s,
            "memory_bytes": c.memory_mb << 20,
            "file_size_bytes": c.file_size_mb << 20,
            "open_files": c.open_files,
            "processes": c.processes,
        },
        "uid": uid,
        "cwd": work,
        "python": _python(),
        "argv": [_python(), "-I", *argv],
        "env": env,
    }


def _wait_nowait(pid: int, deadline: float) -> bool:
    """Wait for ``pid`` to exit without reaping it (its pid, hence its process group id, stays
    reserved until we kill the group). True if it exited before ``deadline``."""
    delay = 0.0005
    while True:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None:
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, 0.02)


def _read_capped(path: str, cap: int) -> tuple[str, bool, str]:
    """(the first ``cap`` bytes, whether there were more, the last 256 bytes)."""
    with open(path, "rb") as f:
        data = f.read(cap + 1)
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 256))
        tail = f.read(256)
    return data[:cap].decode("utf-8", "replace"), len(data) > cap, tail.decode("utf-8", "replace")


def _run(
    c: SandboxConfig,
    iso: Isolation,
    files: dict[str, str],
    argv: list[str],
    stdin: str,
    *,
    wall_s: float | None = None,
    env_extra: dict | None = None,
) -> SandboxResult:
    uid = (
        random.SystemRandom().randrange(c.uid_base, c.uid_base + c.uid_count) if iso.user else None
    )
    base = tempfile.mkdtemp(prefix="synth-ray-sandbox-")
    try:
        work = os.path.join(base, "work")
        os.mkdir(work, 0o700)
        for name, text in files.items():
            p = Path(work, name)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
            if uid is not None:
                os.chown(p, uid, uid)
        if uid is not None:
            os.chown(work, uid, uid)
            os.chmod(base, 0o711)
        spec = _spec(c, iso, work, argv, uid)
        if env_extra:
            spec["env"].update(env_extra)
        out_path, err_path = os.path.join(base, "stdout"), os.path.join(base, "stderr")
        t0 = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [_python(), "-I", "-S", LAUNCH, json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                env={},
                cwd=base,
                start_new_session=True,
                close_fds=True,
            )
        try:
            try:
                proc.stdin.write(stdin.encode())
                proc.stdin.close()
            except OSError:
                pass
            exited = _wait_nowait(proc.pid, t0 + (wall_s or c.wall_s))
        finally:
            if uid is not None:
                # Everything of the run's uid first (the pid namespace's init with it: the kernel
                # then kills and reaps the rest), so the launcher can reap its child and exit.
                sweep_uid(uid)
                _wait_nowait(proc.pid, time.monotonic() + 1.0)
            # The group leader is not reaped yet, so its pid cannot name another group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
            if uid is not None:
                sweep_uid(uid)
        duration = time.monotonic() - t0
        stdout, out_trunc, out_tail = _read_capped(out_path, c.output_bytes)
        stderr, err_trunc, err_tail = _read_capped(err_path, c.output_bytes)
        return SandboxResult(
            returncode=rc,
            stdout=stdout,
            stderr=stderr,
            timed_out=not exited,
            duration_s=duration,
            stdout_truncated=out_trunc,
            stderr_truncated=err_trunc,
            stdout_tail=out_tail,
            stderr_tail=err_tail,
            extra={"uid": uid},
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def probe(config: SandboxConfig) -> Isolation:
    """What isolation works here (cached per process): a probe program run with everything on
    must find the network unreachable, a file in the worker's home invisible, and another uid."""
    key = (tuple(config.hide_dirs), os.geteuid())
    with _PROBE_LOCK:
        if key in _PROBES:
            return _PROBES[key]
        iso = _probe(config)
        _PROBES[key] = iso
        return iso


def _probe(config: SandboxConfig) -> Isolation:
    if os.geteuid() != 0:
        return Isolation(False, False, False, "not root: no namespaces, no uid change")
    import socket

    full = Isolation(True, True, True)
    secret_dir = tempfile.mkdtemp(prefix="synth-ray-probe-", dir=os.path.expanduser("~"))
    secret = os.path.join(secret_dir, "secret")
    Path(secret).write_text("probe")
    c = config.model_copy(update={"wall_s": 20.0, "cpu_s": 10})
    try:
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            env = {"PROBE_PORT": str(srv.getsockname()[1]), "PROBE_SECRET": secret}
            r = _run(c, full, {"probe.py": _PROBE_CODE}, ["probe.py"], "", env_extra=env)
        if r.returncode != 0:
            return Isolation(False, False, False, f"probe failed: {r.reason}: {r.stderr[-300:]}")
        got = json.loads(r.stdout.strip().splitlines()[-1])
        return Isolation(
            network=not got["network"],
            mounts=not got["secret_visible"],
            user=got["uid"] != os.getuid(),
            detail="probe: " + json.dumps(got),
        )
    except Exception as exc:
        return Isolation(False, False, False, f"probe failed: {exc!r}")
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)
