"""The sandbox's launcher: runs in the fresh process, before the untrusted program.

Run by ``sandbox.py`` as ``python -I -S _launch.py SPEC_JSON`` in a new session (its own process
group). It is a script, not imported by synth_ray: it must start fast and touch nothing but the
standard library. In order, each step optional per SPEC:

1. new network namespace (no interface up: every connect fails), pid namespace (a small init
   reaps everything and ends the namespace when the program exits: nothing is left behind, no
   zombie for the machine's init; the program sees only its own processes, its parent is that
   init, root, which it cannot signal) and mount namespace, where
   tmpfs hide the home directories and the world-writable ones (``/tmp``, ``/var/tmp``,
   ``/dev/shm``); the run's own directory and the interpreter's directories are bound back;
2. resource limits (CPU seconds, address space, file size, open files, processes, no core);
3. an unprivileged uid/gid of its own, no supplementary groups;
4. exec of the interpreter with ``-I`` on the program, in the run's directory, with the given
   (minimal) environment.

A failure of a step exits with status 121 and a line ``sandbox-launch: ...`` on stderr.
"""

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1


def _fail(msg):
    os.write(2, f"sandbox-launch: {msg}\n".encode())
    os._exit(121)


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _mount(libc, src, target, fstype, flags, data=None):
    enc = [None if x is None else x.encode() for x in (src, target, fstype, data)]
    if libc.mount(enc[0], enc[1], enc[2], flags, enc[3]) != 0:
        e = ctypes.get_errno()
        _fail(f"mount {src} on {target}: {os.strerror(e)}")


def _under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def _namespaces(spec):
    libc = _libc()
    flags = (CLONE_NEWNET if spec["network"] else 0) | (CLONE_NEWNS if spec["hide"] else 0)
    flags |= CLONE_NEWPID if spec.get("pidns") else 0
    if flags and libc.unshare(flags) != 0:
        _fail(f"unshare: {os.strerror(ctypes.get_errno())}")
    if not spec["hide"]:
        return
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    hide = [d for d in spec["hide"] if os.path.isdir(d)]
    # Keep-paths under a hidden directory are opened before it is covered, bound back after.
    keep = []
    for p in spec["keep"]:
        if any(_under(p, h) for h in hide) and os.path.isdir(p):
            keep.append((p, os.open(p, os.O_PATH | os.O_DIRECTORY)))
    size = spec["tmpfs_mb"]
    for d in hide:
        _mount(libc, "tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size}m,mode=1777")
    for p, fd in keep:
        os.makedirs(p, exist_ok=True)
        _mount(libc, f"/proc/self/fd/{fd}", p, None, MS_BIND | MS_REC)
        os.close(fd)


def _proc_for_new_pid_namespace():
    """In the new pid namespace: a /proc that shows only its processes (best effort)."""
    libc = _libc()
    libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)


def _exit_like(status):
    """Exit the way a child with wait status ``status`` did (signal or code)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status))


def _pid_namespace(spec):
    """Returns in the program's process only. The launcher (outside the namespace) forks the
    namespace's init, which forks the program and reaps every process until the program exits,
    then passes its wait status to the launcher through a pipe and exits: the kernel then kills
    what is left in the namespace. Signals with default action do not reach a namespace's init,
    so the program must not be it (its CPU limit would not kill it)."""
    r, w = os.pipe()
    init = os.fork()
    if init:  # the launcher
        os.close(w)
        _, status = os.waitpid(init, 0)
        got = os.read(r, 32)
        _exit_like(int(got) if got else status)
    os.close(r)
    _libc().prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)  # dies with the launcher (and the namespace too)
    if spec["hide"]:
        _proc_for_new_pid_namespace()
    program = os.fork()
    if program == 0:
        os.close(w)
        return
    while True:  # the namespace's init: reap everything, stop when the program is done
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(120)
        if pid == program:
            os.write(w, str(status).encode())
            os._exit(0)


def main():
    spec = json.loads(sys.argv[1])
    _namespaces(spec)
    if spec.get("pidns"):
        _pid_namespace(spec)
    lim = spec["limits"]
    for name, value in (
        ("RLIMIT_CPU", lim["cpu_s"]),
        ("RLIMIT_AS", lim["memory_bytes"]),
        ("RLIMIT_FSIZE", lim["file_size_bytes"]),
        ("RLIMIT_NOFILE", lim["open_files"]),
        ("RLIMIT_NPROC", lim["processes"]),
        ("RLIMIT_CORE", 0),
    ):
        try:
            hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU first, then SIGKILL
            resource.setrlimit(getattr(resource, name), (value, hard))
        except (ValueError, OSError) as exc:
            _fail(f"setrlimit {name}={value}: {exc}")
    uid = spec["uid"]
    if uid is not None:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        except OSError as exc:
            _fail(f"setuid {uid}: {exc}")
    if spec.get("pidns"):  # after setuid, which clears it: die with the namespace's init
        _libc().prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    os.chdir(spec["cwd"])
    try:
        os.execve(spec["python"], spec["argv"], spec["env"])
    except OSError as exc:
        _fail(f"exec {spec['python']}: {exc}")


if __name__ == "__main__":  # a script: importing it does nothing
    main()
