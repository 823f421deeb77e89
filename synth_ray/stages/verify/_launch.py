"""The sandbox's launcher: runs in the fresh process, before the untrusted program.

Run by ``sandbox.py`` as ``python -I -S _launch.py SPEC_JSON`` in a new session (its own process
group). It is a script, not imported by synth_ray: it must start fast and touch nothing but the
standard library. In order, each step optional per SPEC:

1. new network namespace (no interface up: every connect fails) and mount namespace, where
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
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18


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


def main():
    spec = json.loads(sys.argv[1])
    _namespaces(spec)
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
    os.chdir(spec["cwd"])
    try:
        os.execve(spec["python"], spec["argv"], spec["env"])
    except OSError as exc:
        _fail(f"exec {spec['python']}: {exc}")


main()
