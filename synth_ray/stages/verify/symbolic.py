"""Symbolic equivalence of two answers with sympy, with a timeout that works from any thread.

For the answers that are not plain numbers (``\\frac{\\sqrt{2}}{2}`` vs ``1/sqrt(2)``, ``2(x+1)``
vs ``2x+2``, ``(1, 2)``), as a general checker for ReST-EM's binary math reward (survey,
"Synthetic data for instruction-tuning"). ``math-verify`` is not a dependency of this project;
this is the sympy-based equivalent.

sympy's ``simplify`` can run for minutes and its parser evaluates Python, so:

- answers are converted from LaTeX (``\\frac``, ``\\sqrt``, ``\\cdot``, ``^``, ``\\pi``) and then
  must consist of digits, operators, brackets and a few known names (``sqrt``, ``pi``, ``log``,
  ...) or single-letter variables; anything else is ``unparseable`` without reaching sympy;
- comparisons run in a long-lived helper process (``_sympy_worker.py``) started through the
  sandbox launcher with an address-space limit; the parent waits for each answer with
  ``select`` and a timeout, and on a timeout kills the helper's process group and starts another
  on the next call. No signal, no ``signal.alarm``: Ray workers run stages in threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

from synth_ray.stages.verify.sandbox import LAUNCH, MINIMAL_PATH

WORKER = str(Path(__file__).with_name("_sympy_worker.py"))
_NAMES = {"sqrt", "pi", "oo", "exp", "log", "ln", "sin", "cos", "tan", "E", "I"}
_ALLOWED = re.compile(r"^[0-9A-Za-z+\-*/().,\s]*$")


def _group(s: str, i: int) -> tuple[str, int]:
    """The brace group starting at s[i] == '{' -> (content, index after it)."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
    raise ValueError("unbalanced braces")


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i].isspace():
        i += 1
    return i


def latex_to_sympy(s: str) -> str:
    """A LaTeX-ish answer in sympy's syntax; raises ValueError on what it cannot convert."""
    for a, b in (("\\cdot", "*"), ("\\times", "*"), ("\\div", "/"), ("\\pi", "pi"), ("π", "pi")):
        s = s.replace(a, b)
    s = s.replace("\\infty", "oo").replace("^", "**")
    out, i = [], 0
    while i < len(s):
        if s.startswith("\\frac", i):
            j = _skip_ws(s, i + 5)
            num, j = _group(s, j) if j < len(s) and s[j] == "{" else (s[j], j + 1)
            j = _skip_ws(s, j)
            den, j = _group(s, j) if j < len(s) and s[j] == "{" else (s[j], j + 1)
            out.append(f"(({latex_to_sympy(num)})/({latex_to_sympy(den)}))")
            i = j
        elif s.startswith("\\sqrt", i):
            j = _skip_ws(s, i + 5)
            root = None
            if j < len(s) and s[j] == "[":
                k = s.index("]", j)
                root, j = s[j + 1 : k], _skip_ws(s, k + 1)
            arg, j = _group(s, j) if j < len(s) and s[j] == "{" else (s[j], j + 1)
            inner = latex_to_sympy(arg)
            out.append(f"(({inner})**(1/({latex_to_sympy(root)})))" if root else f"sqrt({inner})")
            i = j
        elif s[i] in "{}":
            out.append("(" if s[i] == "{" else ")")
            i += 1
        else:
            out.append(s[i])
            i += 1
    res = "".join(out)
    if "\\" in res:
        raise ValueError(f"unsupported LaTeX in {res[:60]!r}")
    return res


def sanitize(expr: str) -> str:
    """``expr`` if it is only arithmetic on known names and one-letter variables, else ValueError."""
    e = re.sub(r"(?<=\d),(?=\d{3}\b)", "", expr.strip())  # thousands separators
    if not e or not _ALLOWED.match(e):
        raise ValueError(f"characters outside arithmetic in {expr[:60]!r}")
    for name in re.findall(r"[A-Za-z]+", e):
        if len(name) > 1 and name not in _NAMES:
            raise ValueError(f"unknown name {name!r}")
    if re.search(r"\.[A-Za-z]", e):
        raise ValueError("attribute access")
    if len(e) > 400:
        raise ValueError("answer too long for the symbolic checker")
    return e.replace("ln", "log")


class SymbolicChecker:
    """``equal(a, b)`` -> (True | False | None, reason); thread-safe; one helper process."""

    def __init__(self, timeout_s: float = 5.0, memory_mb: int = 1024, start_timeout_s: float = 60):
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        spec = {
            "network": False,
            "hide": [],
            "keep": [],
            "tmpfs_mb": 1,
            "limits": {
                "cpu_s": 3600,
                "memory_bytes": self.memory_mb << 20,
                "file_size_bytes": 1 << 20,
                "open_files": 64,
                "processes": 4096,
            },
            "uid": None,
            "cwd": "/",
            "python": sys.executable,
            "argv": [sys.executable, "-I", WORKER],
            "env": {"PATH": MINIMAL_PATH, "LANG": "C.UTF-8"},
        }
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", LAUNCH, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            start_new_session=True,
            close_fds=True,
        )
        self._proc = proc
        ready, _, _ = select.select([proc.stdout], [], [], self.start_timeout_s)
        if not ready or b"ready" not in proc.stdout.readline():
            self._kill()
            raise RuntimeError("the symbolic checker's helper did not start")
        return proc

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # Not reaped yet: the group id is still ours.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                f.close()

    def close(self) -> None:
        with self._lock:
            self._kill()

    def __del__(self):
        with contextlib.suppress(Exception):
            self._kill()

    def equal(self, a: str, b: str) -> tuple[bool | None, str]:
        try:
            sa, sb = sanitize(latex_to_sympy(a)), sanitize(latex_to_sympy(b))
        except (ValueError, IndexError) as exc:
            return None, f"unparseable: {exc}"
        line = (json.dumps({"a": sa, "b": sb}) + "\n").encode()
        with self._lock:
            for _attempt in (1, 2):  # a helper that died (memory limit) is replaced once
                try:
                    proc = self._proc or self._start()
                    proc.stdin.write(line)
                    proc.stdin.flush()
                    ready, _, _ = select.select([proc.stdout], [], [], self.timeout_s)
                except (OSError, ValueError, RuntimeError):
                    self._kill()
                    continue
                if not ready:
                    self._kill()
                    return None, f"symbolic_timeout: over {self.timeout_s:g} s"
                reply = proc.stdout.readline()
                if not reply:
                    self._kill()
                    continue
                got = json.loads(reply)
                if got.get("equal") is None:
                    return None, f"unparseable: {got.get('error', '')}"
                return bool(got["equal"]), "symbolic"
            return None, "symbolic_error: the helper process died"
