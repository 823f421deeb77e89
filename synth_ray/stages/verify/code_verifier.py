"""The code verifier: the model's program and the problem's tests, run in the sandbox.

ReST-EM's code reward (survey, "Synthetic data for instruction-tuning": "for code, test cases
evaluated if the response was correct"): reward 1 only when every test passes. Two formats:

- HumanEval (``prompt``, ``entry_point``, ``test`` defining ``check(candidate)``): the output is
  either a completion of the prompt (appended to it) or a whole function ``def entry_point``
  (then the prompt's import lines are put before it); ``check(entry_point)`` runs after it.
- MBPP (``test_list`` of ``assert`` lines, optional ``test_setup_code`` and ``test_imports``).

The code is taken from the first Markdown code fence that defines a function, else the first
fence, else the whole output. A small harness reads a per-run random token from stdin, runs the
program and tests with ``exec``, and prints the token only if that returned: a program that exits
early with status 0 (``sys.exit(0)``, ``os._exit(0)``) does not pass.
"""

from __future__ import annotations

import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import Field

from synth_ray.config import StrictModel
from synth_ray.stages.verify.base import VERIFIERS, Verdict, Verifier
from synth_ray.stages.verify.sandbox import Sandbox, SandboxConfig, SandboxResult

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
HARNESS = """\
import os, sys


def _main():
    token = sys.stdin.readline().strip()
    out = os.dup(1)
    with open("solution.py", encoding="utf-8") as f:
        code = compile(f.read(), "solution.py", "exec")
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    os.write(out, ("\\n" + token + "\\n").encode())


_main()
"""


class CodeVerifierConfig(StrictModel):
    format: Literal["auto", "humaneval", "mbpp"] = Field(
        "auto",
        description="Problem format; auto: humaneval when the row has entry_point and test, "
        "mbpp when it has test_list.",
    )
    sandbox: SandboxConfig = Field(
        default_factory=SandboxConfig, description="Limits and isolation of each run."
    )
    threads: int = Field(
        2, ge=1, description="Sandbox runs in flight at once in one verify_many call."
    )


def code_from_output(text: str) -> str:
    """The program in a model's output (see the module docstring)."""
    blocks = [
        body
        for lang, body in _FENCE.findall(text or "")
        if lang.lower() in ("", "python", "py", "python3")
    ]
    for body in blocks:
        if re.search(r"^\s*def\s+\w+", body, re.M):
            return body
    return blocks[0] if blocks else (text or "")


def _imports(prompt: str) -> str:
    return "\n".join(ln for ln in prompt.splitlines() if re.match(r"^(import|from)\s+\w", ln))


def build_program(problem: dict, output: str, fmt: str = "auto") -> tuple[str, str]:
    """(program with its tests, format used); ValueError when the row is neither format."""
    if fmt == "auto":
        if problem.get("entry_point") and problem.get("test"):
            fmt = "humaneval"
        elif problem.get("test_list"):
            fmt = "mbpp"
        else:
            raise ValueError(
                "the row has neither entry_point + test (HumanEval) nor test_list (MBPP)"
            )
    code = code_from_output(output)
    if fmt == "humaneval":
        entry, prompt = problem["entry_point"], problem.get("prompt") or ""
        if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.M):
            program = _imports(prompt) + "\n\n" + code
        else:
            program = prompt + code
        return f"{program}\n\n{problem['test']}\n\ncheck({entry})\n", fmt
    tests = list(problem.get("test_list") or [])
    setup = problem.get("test_setup_code") or ""
    imports = "\n".join(problem.get("test_imports") or [])
    return f"{imports}\n{code}\n\n{setup}\n" + "\n".join(tests) + "\n", fmt


def classify(result: SandboxResult, token: str) -> Verdict:
    """The verdict of one sandbox run of a program and its tests."""
    if result.returncode == 0 and token in (result.stdout_tail + result.stdout):
        return Verdict(1, "tests_passed")
    if result.returncode == 0:
        return Verdict(0, "exited_early: status 0 before the tests finished")
    reason = result.reason
    if reason.startswith("exit_status_"):
        last = [ln for ln in result.stderr_tail.splitlines() if ln.strip()]
        msg = last[-1].strip() if last else ""
        kind = msg.split(":", 1)[0]
        if kind == "AssertionError":
            return Verdict(0, f"test_failed: {msg[:200]}")
        if kind in ("ModuleNotFoundError", "ImportError"):
            return Verdict(0, f"import_error: {msg[:200]}")
        if "File too large" in msg:  # Python ignores SIGXFSZ: the write fails with EFBIG
            return Verdict(0, f"file_size_limit: {msg[:200]}")
        if kind == "MemoryError":
            return Verdict(0, "memory_limit: MemoryError")
        if kind in ("SyntaxError", "IndentationError", "TabError"):
            return Verdict(0, f"syntax_error: {msg[:200]}")
        return Verdict(0, f"error: {msg[:200] or reason}")
    last = [ln for ln in result.stderr_tail.splitlines() if ln.strip()]
    return Verdict(0, f"{reason}: {last[-1].strip()[:200]}" if last else reason)


@VERIFIERS.register("code")
class CodeVerifier(Verifier):
    """Raises ``SandboxUnavailable`` at construction where programs cannot be isolated."""

    name = "code"

    def __init__(self, config: CodeVerifierConfig | None = None):
        self.config = config or CodeVerifierConfig()
        self.sandbox = Sandbox(self.config.sandbox)

    def verify(self, problem: dict, output: str) -> Verdict:
        try:
            program, _ = build_program(problem, output, self.config.format)
        except (ValueError, KeyError) as exc:
            return Verdict(0, f"bad_problem: {exc}")
        token = secrets.token_hex(16)
        files = {"solution.py": program, "harness.py": HARNESS}
        result = self.sandbox.run(files, ["harness.py"], stdin=token + "\n")
        return classify(result, token)

    def verify_many(self, pairs: list[tuple[dict, str]]) -> list[Verdict]:
        with ThreadPoolExecutor(self.config.threads) as pool:
            return list(pool.map(lambda p: self.verify(*p), pairs))
