"""synth-ray's `vllm` engine on Ray Data vs bare `vllm.LLM.generate`: steady-state tokens/s.

Same model, same prompts, same sampling (greedy, ignore_eos: every prompt yields exactly
--max-tokens tokens on both sides), in one run. Each side runs in its own subprocess, one
after the other, so they never share the 2 cores.

Each side is timed from the moment its engine is ready to the last completion, so filling and
draining the engine count on both sides and engine start-up on neither:
- bare: `vllm.LLM(...)`, a warm-up `generate` of --warmup prompts, then the timed
  `generate` of --prompts prompts.
- synth-ray: `VLLMEngine.generate` over a Ray Data dataset of --prompts rows; the driver
  timestamps output batches as they stream in. ray.data.llm starts its engine inside the
  run, so "engine ready" = first batch's arrival minus the longest time a row of that batch
  spent in the engine (`engine_s`); the rows' post-processing counts against synth-ray.

    python benchmarks/generation_overhead.py            # 2,000 prompts x 64 tokens, 3 pairs
The pair (bare, synth-ray) runs --repeats times, alternating; each pair's ratio is printed.
Last line: ratio=<median over pairs of synth-ray tokens/s / bare tokens/s>
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "rain",
    "falls",
    "on",
    "green",
    "hills",
    "and",
    "rivers",
    "run",
    "to",
    "the",
    "sea",
    "under",
    "bright",
    "stars",
]


def make_prompts(n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    return [
        "USER: Rephrase: "
        + " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60)))
        + " ASSISTANT:"
        for _ in range(n)
    ]


def engine_args(a) -> dict:
    return {"max_num_seqs": a.max_num_seqs, "max_model_len": 2048, "enforce_eager": True}


def run_bare(a) -> dict:
    from vllm import LLM, SamplingParams

    llm = LLM(model=a.model, **engine_args(a))
    sp = SamplingParams(temperature=0.0, max_tokens=a.max_tokens, ignore_eos=True)
    llm.generate(make_prompts(a.warmup, seed=1), sp, use_tqdm=False)
    t = time.perf_counter()
    outs = llm.generate(make_prompts(a.prompts), sp, use_tqdm=False)
    dt = time.perf_counter() - t
    toks = sum(len(o.outputs[0].token_ids) for o in outs)
    return {"tokens": toks, "seconds": dt, "tokens_per_s": toks / dt, "wall_s": dt}


def run_synth_ray(a) -> dict:
    import ray
    import ray.data

    from synth_ray.engines import build_engine
    from synth_ray.engines.base import SamplingConfig
    from synth_ray.models.resolve import ResolvedModel
    from synth_ray.runner import init_local_ray

    init_local_ray(8, log_to_driver=False)  # as `synth-ray run` starts it
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    sampling = SamplingConfig(temperature=0.0, max_tokens=a.max_tokens, ignore_eos=True).to_json()
    prompts = make_prompts(a.prompts)
    rows = [{"id": str(i), "prompt": p, "sampling": sampling} for i, p in enumerate(prompts)]
    engine = build_engine(
        {
            "type": "vllm",
            "batch_size": a.batch_size,
            "max_num_seqs": a.max_num_seqs,
            "max_concurrent_batches": a.max_concurrent_batches,
            "max_model_len": 2048,
        },
        ResolvedModel(a.model, a.model, "local"),
    )
    ds = engine.generate(
        ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // a.batch_size))
    )
    arrivals = []  # (time, rows, tokens)
    t0 = time.perf_counter()
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        toks = sum(batch.column("completion_tokens").to_pylist())
        errs = [e for e in batch.column("error").to_pylist() if e]
        assert not errs, errs[:3]
        arrivals.append(
            (time.perf_counter(), batch.num_rows, toks, max(batch.column("engine_s").to_pylist()))
        )
    assert sum(r for _, r, _, _ in arrivals) == len(rows)
    t_ready = arrivals[0][0] - arrivals[0][3]
    toks = sum(k for _, _, k, _ in arrivals)
    dt = arrivals[-1][0] - t_ready
    return {
        "tokens": toks,
        "seconds": dt,
        "tokens_per_s": toks / dt,
        "wall_s": arrivals[-1][0] - t0,
        "engine_starts": engine.starts,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=None, help="model folder (default: the tiny model)")
    p.add_argument("--prompts", type=int, default=2000)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--warmup", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--max-num-seqs", type=int, default=256)
    p.add_argument("--max-concurrent-batches", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="(bare, synth-ray) pairs; median ratio")
    p.add_argument("--side", choices=["bare", "synth-ray"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.model is None:
        from synth_ray.models.tiny import tiny_model_path

        a.model = str(tiny_model_path())
    if a.side:
        result = run_bare(a) if a.side == "bare" else run_synth_ray(a)
        print("RESULT " + json.dumps(result))
        return
    ratios = []
    for rep in range(a.repeats):
        results = {}
        for side in ("bare", "synth-ray"):
            cmd = [sys.executable, __file__, "--side", side] + [
                f"--{k.replace('_', '-')}={v}"
                for k, v in vars(a).items()
                if k not in ("side", "repeats")
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{side} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
            results[side] = r = json.loads(line[-1][len("RESULT ") :])
            print(
                f"[{rep + 1}/{a.repeats}] {side:10s} {r['tokens']:7d} tokens in {r['seconds']:6.2f} s "
                f"= {r['tokens_per_s']:8.1f} tokens/s  (wall {r['wall_s']:.1f} s"
                + (", engine start included)" if side != "bare" else ")"),
                flush=True,
            )
        ratios.append(results["synth-ray"]["tokens_per_s"] / results["bare"]["tokens_per_s"])
        print(f"[{rep + 1}/{a.repeats}] ratio {ratios[-1]:.3f}", flush=True)
    print(
        f"prompts={a.prompts} max_tokens={a.max_tokens} warmup={a.warmup} batch_size={a.batch_size} "
        f"max_num_seqs={a.max_num_seqs} max_concurrent_batches={a.max_concurrent_batches} "
        f"ratios={[round(x, 3) for x in ratios]}"
    )
    print(f"ratio={statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
