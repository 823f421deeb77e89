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

- pool (--pool): the same engine with ``lifetime: run`` (long-lived replicas, Ray Data tasks
  sending batches to them); started by a warm-up call of --warmup prompts, as bare is.

Both sides get the same vLLM engine arguments by default (--bare-kwargs same: what
``VLLMEngine.engine_setup`` passes, e.g. chunked prefill off on CPU); --bare-kwargs minimal
gives bare vLLM its own defaults instead (see benchmarks/README.md for the difference).

    python benchmarks/generation_overhead.py            # 2,000 prompts x 64 tokens, 3 pairs
    python benchmarks/generation_overhead.py --model <folder> --prompts 512 --warmup 64 \
        --repeats 2 --pool                              # a real model, with the pool
The pair (bare, synth-ray[, pool]) runs --repeats times, alternating; each pair's ratios are
printed, then median, min and max over pairs. Last line: ratio=<median over pairs of
synth-ray tokens/s / bare tokens/s>
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


def engine_config(a) -> dict:
    return {
        "type": "vllm",
        "batch_size": a.batch_size,
        "max_num_seqs": a.max_num_seqs,
        "max_concurrent_batches": a.max_concurrent_batches,
        "max_model_len": 2048,
        "cpu_threads": a.cpu_threads,
    }


def engine_args(a) -> dict:
    """The bare side's engine arguments. ``same`` (default): exactly what the vllm engine
    passes to vLLM (``VLLMEngine.engine_setup``: on CPU chunked prefill off, stats off,
    the structured-output backend); ``minimal``: only max_num_seqs, max_model_len and
    enforce_eager, the rest vLLM's defaults (chunked prefill on)."""
    if a.bare_kwargs == "minimal":
        return {"max_num_seqs": a.max_num_seqs, "max_model_len": 2048, "enforce_eager": True}
    from synth_ray.engines import build_engine
    from synth_ray.models.resolve import ResolvedModel

    kwargs, _bundles, _acc, env = build_engine(
        engine_config(a), ResolvedModel(a.model, a.model, "local")
    ).engine_setup()
    os.environ.update(env)
    return kwargs


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


def run_bare_async(a) -> dict:
    """vLLM's async engine (what ray.data.llm and the pool hold), every prompt submitted at
    once, final outputs only: tells the frontend (``LLM`` vs ``AsyncLLM``) from the pipeline."""
    import asyncio

    from vllm import AsyncEngineArgs, AsyncLLMEngine, SamplingParams
    from vllm.sampling_params import RequestOutputKind

    engine = AsyncLLMEngine.from_engine_args(AsyncEngineArgs(model=a.model, **engine_args(a)))
    sp = SamplingParams(
        temperature=0.0,
        max_tokens=a.max_tokens,
        ignore_eos=True,
        output_kind=RequestOutputKind.FINAL_ONLY,
    )

    async def one(i: int, prompt: str) -> int:
        final = None
        async for out in engine.generate(prompt, sp, f"r{i}"):
            final = out
        return len(final.outputs[0].token_ids)

    async def run(prompts: list[str], tag: str) -> int:
        return sum(await asyncio.gather(*(one(f"{tag}{i}", p) for i, p in enumerate(prompts))))

    loop = asyncio.new_event_loop()
    loop.run_until_complete(run(make_prompts(a.warmup, seed=1), "w"))
    t = time.perf_counter()
    toks = loop.run_until_complete(run(make_prompts(a.prompts), "t"))
    dt = time.perf_counter() - t
    engine.shutdown()
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
    if a.side == "pool":
        return run_pool(a, rows)
    engine = build_engine(engine_config(a), ResolvedModel(a.model, a.model, "local"))
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


def run_pool(a, rows: list[dict]) -> dict:
    """The long-lived pool (``lifetime: run``): started by a warm-up call, as bare is."""
    import ray.data

    from synth_ray.engines import build_engine
    from synth_ray.models.resolve import ResolvedModel

    engine = build_engine(
        {**engine_config(a), "lifetime": "run"}, ResolvedModel(a.model, a.model, "local")
    )
    sampling = rows[0]["sampling"]
    warm = [
        {"id": f"w{i}", "prompt": p, "sampling": sampling}
        for i, p in enumerate(make_prompts(a.warmup, seed=1))
    ]
    engine.generate(ray.data.from_items(warm)).materialize()
    t = time.perf_counter()
    toks, n = 0, 0
    ds = engine.generate(
        ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // a.batch_size)),
        num_rows=len(rows),
    )
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        errs = [e for e in batch.column("error").to_pylist() if e]
        assert not errs, errs[:3]
        toks += sum(batch.column("completion_tokens").to_pylist())
        n += batch.num_rows
    dt = time.perf_counter() - t
    assert n == len(rows)
    engine.close()
    return {"tokens": toks, "seconds": dt, "tokens_per_s": toks / dt, "wall_s": dt}


def spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.3f}, min {min(xs):.3f}, max {max(xs):.3f}"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=None, help="model name or folder (default: tiny)")
    p.add_argument("--prompts", type=int, default=2000)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--warmup", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--max-num-seqs", type=int, default=256)
    p.add_argument("--max-concurrent-batches", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="(bare, synth-ray) pairs; median ratio")
    p.add_argument(
        "--bare-kwargs",
        choices=["same", "minimal"],
        default="same",
        help="bare vLLM's engine arguments: the vllm engine's own (default) or vLLM defaults",
    )
    p.add_argument(
        "--cpu-threads",
        choices=["auto", "vllm"],
        default="auto",
        help="the engine's cpu_threads setting, on both sides (VLLMEngineConfig)",
    )
    p.add_argument("--pool", action="store_true", help="also time the long-lived pool")
    p.add_argument(
        "--bare-async", action="store_true", help="also time bare vLLM's async engine (AsyncLLM)"
    )
    p.add_argument(
        "--side", choices=["bare", "bare-async", "synth-ray", "pool"], help=argparse.SUPPRESS
    )
    a = p.parse_args()
    if not a.side:  # a name (tiny, smollm2-135m) or a folder -> the folder both sides load
        from synth_ray.models.resolve import resolve_model

        a.model = resolve_model(a.model or "tiny").source
    if a.side:
        runs = {"bare": run_bare, "bare-async": run_bare_async}
        result = runs.get(a.side, run_synth_ray)(a)  # synth-ray or pool: run_synth_ray
        print("RESULT " + json.dumps(result))
        return
    sides = ["bare", "synth-ray"] + (["pool"] if a.pool else [])
    sides += ["bare-async"] if a.bare_async else []
    ratios: dict[str, list[float]] = {s: [] for s in sides[1:]}
    for rep in range(a.repeats):
        results = {}
        for side in sides:
            cmd = [sys.executable, __file__, "--side", side] + [
                f"--{k.replace('_', '-')}={v}"
                for k, v in vars(a).items()
                if k not in ("side", "repeats", "pool", "bare_async")
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{side} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
            results[side] = r = json.loads(line[-1][len("RESULT ") :])
            print(
                f"[{rep + 1}/{a.repeats}] {side:10s} {r['tokens']:7d} tokens in "
                f"{r['seconds']:6.2f} s = {r['tokens_per_s']:8.1f} tokens/s  (wall {r['wall_s']:.1f} s"
                + (", engine start included)" if side == "synth-ray" else ")"),
                flush=True,
            )
        for side in sides[1:]:
            ratios[side].append(results[side]["tokens_per_s"] / results["bare"]["tokens_per_s"])
        print(
            f"[{rep + 1}/{a.repeats}] ratio "
            + ", ".join(f"{s} {ratios[s][-1]:.3f}" for s in sides[1:]),
            flush=True,
        )
    print(
        f"prompts={a.prompts} max_tokens={a.max_tokens} warmup={a.warmup} batch_size={a.batch_size} "
        f"max_num_seqs={a.max_num_seqs} max_concurrent_batches={a.max_concurrent_batches} "
        f"bare_kwargs={a.bare_kwargs} ratios={[round(x, 3) for x in ratios['synth-ray']]}"
    )
    for side in sides[1:]:
        print(f"{side} / bare: {spread(ratios[side])}")
    print(f"ratio={statistics.median(ratios['synth-ray']):.3f}")


if __name__ == "__main__":
    main()
