"""Benchmark: verifications per second, code in the sandbox vs a plain subprocess, and the math
checker.

1. Code: a trivial passing HumanEval-shaped problem (``def f(): return 1`` and ``check``), the
   same harness and files each time.
   - plain: a fresh temporary directory, ``python -I harness.py`` as an ordinary subprocess,
     the directory removed: the least any run-it-in-a-process verifier pays;
   - sandboxed: ``CodeVerifier.verify`` (launcher, network/mount/pid namespaces, own uid,
     rlimits, wall-clock watch, uid sweep, directory removed).
   Each with 1 thread and with 2 (this machine's cores), sequentially over ``--n`` runs; every
   run must pass (reward 1).
2. Math: ``MathVerifier.verify`` on GSM8K reference solutions (the exact numeric path) and on
   symbolic pairs (sympy in the helper process), on one thread.

Last line: ``ratio=<sandboxed seconds per verification / plain, at 2 threads>``: what isolation
costs per run on top of starting a process at all.

Usage: python benchmarks/verify_throughput.py [--n 200] [--math-n 1319] [--symbolic-n 200]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from synth_ray.stages.verify.code_verifier import (  # noqa: E402
    HARNESS,
    CodeVerifier,
    CodeVerifierConfig,
    build_program,
)
from synth_ray.stages.verify.math_verifier import MathVerifier  # noqa: E402

GSM8K = ROOT.parent / "shared" / "data" / "gsm8k_test.jsonl"
PROBLEM = {
    "prompt": "def f():\n",
    "entry_point": "f",
    "test": "def check(candidate):\n    assert candidate() == 1\n",
}
OUTPUT = "    return 1\n"


def plain_run(_: int) -> bool:
    program, _fmt = build_program(PROBLEM, OUTPUT)
    token = secrets.token_hex(16)
    d = tempfile.mkdtemp(prefix="bench-plain-")
    try:
        Path(d, "solution.py").write_text(program)
        Path(d, "harness.py").write_text(HARNESS)
        r = subprocess.run(
            [sys.executable, "-I", "harness.py"],
            input=token + "\n",
            capture_output=True,
            text=True,
            cwd=d,
            env={"PATH": "/usr/bin:/bin"},
            timeout=30,
        )
        return r.returncode == 0 and token in r.stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)


def timed(fn, n: int, threads: int) -> tuple[float, int]:
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        ok = sum(bool(x) for x in pool.map(fn, range(n)))
    return time.perf_counter() - t, ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="code verifications per setting")
    ap.add_argument("--math-n", type=int, default=1319, help="GSM8K rows (numeric path)")
    ap.add_argument("--symbolic-n", type=int, default=200, help="symbolic comparisons")
    args = ap.parse_args()

    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, euid {os.geteuid()}")
    verifier = CodeVerifier(CodeVerifierConfig())
    print(verifier.sandbox.isolation.describe())

    def sandboxed(_: int) -> bool:
        return verifier.verify(PROBLEM, OUTPUT).reward == 1

    # warm-up (page cache, the probe already ran)
    timed(plain_run, 4, 2)
    timed(sandboxed, 4, 2)
    per = {}
    for name, fn in (("plain subprocess", plain_run), ("sandboxed", sandboxed)):
        for threads in (1, 2):
            secs, ok = timed(fn, args.n, threads)
            assert ok == args.n, f"{name}: only {ok} of {args.n} runs passed"
            per[(name, threads)] = secs / args.n
            print(
                f"code  {name:17s} threads={threads}: {args.n} in {secs:6.2f} s = "
                f"{args.n / secs:7.1f} verifications/s ({1000 * secs / args.n:6.1f} ms each)"
            )

    mv = MathVerifier()
    if GSM8K.exists():
        rows = [json.loads(x) for x in GSM8K.read_text().splitlines()][: args.math_n]
        t = time.perf_counter()
        ok = sum(mv.verify(r, r["answer"]).reward for r in rows)
        secs = time.perf_counter() - t
        print(
            f"math  numeric (GSM8K refs)   : {len(rows)} in {secs:6.2f} s = "
            f"{len(rows) / secs:9.1f} verifications/s ({ok} correct)"
        )
    pairs = [("\\frac{\\sqrt{2}}{2}", "1/sqrt(2)"), ("2(x+1)", "2x+2"), ("x^2+2x+1", "(x+1)^2")]
    mv.compare(*pairs[0])  # the helper's start (sympy import) is not counted
    t = time.perf_counter()
    ok = sum(mv.compare(*pairs[i % len(pairs)]).reward for i in range(args.symbolic_n))
    secs = time.perf_counter() - t
    print(
        f"math  symbolic (sympy helper): {args.symbolic_n} in {secs:6.2f} s = "
        f"{args.symbolic_n / secs:9.1f} verifications/s ({ok} equal)"
    )
    mv.close()
    ratio = per[("sandboxed", 2)] / per[("plain subprocess", 2)]
    print(f"sandboxed / plain per-run cost at 2 threads: {ratio:.3f}")
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
