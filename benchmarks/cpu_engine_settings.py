"""vLLM on CPU: what the `vllm` engine's CPU defaults (dtype, thread binding) are worth.

Bare ``vllm.LLM.generate`` of the same prompts and sampling under four settings, each in a
process of its own, one after the other:

- ``vllm-defaults``: the model's dtype (bf16 for SmolLM2) and vLLM's own thread binding (one
  core computes, one is reserved for its scheduler);
- ``float32``: the same binding, weights as float32;
- ``float32+all-cores``: float32, one OpenMP thread bound to every core
  (``VLLM_CPU_NUM_OF_RESERVED_CPU=0``): what ``VLLMEngineConfig`` does for one replica on a CPU
  without bf16 instructions (``dtype: auto``, ``cpu_threads: auto``);
- ``float32+nobind``: float32, two threads left to the OS (what several replicas get).

    python benchmarks/cpu_engine_settings.py --model smollm2-135m --prompts 64 --max-tokens 256

Last line: ratio=<float32+all-cores tokens/s / vllm-defaults tokens/s>.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SETTINGS = {
    "vllm-defaults": ("auto", {}),
    "float32": ("float32", {}),
    "float32+all-cores": ("float32", {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}),
    "float32+nobind": ("float32", {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "2"}),
}


def run_side(a) -> None:
    import time

    from vllm import LLM, SamplingParams

    llm = LLM(
        model=a.source,
        dtype=a.dtype,
        enforce_eager=True,
        enable_chunked_prefill=False,
        max_num_seqs=256,
    )
    prompts = [
        f"Write a short paragraph about topic number {i}: the history of bridges and rivers."
        for i in range(a.prompts)
    ]
    sp = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=a.max_tokens, ignore_eos=True)
    llm.generate(prompts[:8], SamplingParams(max_tokens=16))  # warm-up
    t0 = time.perf_counter()
    outs = llm.generate(prompts, sp, use_tqdm=False)
    dt = time.perf_counter() - t0
    n = sum(len(o.outputs[0].token_ids) for o in outs)
    print("RESULT " + json.dumps({"tokens": n, "seconds": dt}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--source", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        return run_side(a)

    from synth_ray.engines.vllm_engine import cpu_has_half_precision
    from synth_ray.models.resolve import resolve_model

    source = resolve_model(a.model).source
    print(f"model {a.model} ({source}); CPU has bf16 instructions: {cpu_has_half_precision()}")
    rates = {}
    for name, (dtype, extra) in SETTINGS.items():
        env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"))
        env.update(extra)
        cmd = [sys.executable, __file__, f"--side={name}", f"--source={source}", f"--dtype={dtype}"]
        cmd += [f"--prompts={a.prompts}", f"--max-tokens={a.max_tokens}"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not lines:
            sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
        r = json.loads(lines[-1][len("RESULT ") :])
        rates[name] = r["tokens"] / r["seconds"]
        print(
            f"{name:20s} {r['tokens']} tokens in {r['seconds']:6.1f} s = {rates[name]:7.1f} tokens/s"
        )
    print(f"ratio={rates['float32+all-cores'] / rates['vllm-defaults']:.3f}")


if __name__ == "__main__":
    main()
