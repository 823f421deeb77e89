"""The LLM judge, free text vs constrained: parse rate, score distribution, separation, time.

The same --items (instruction, response) pairs from the Self-Instruct seed tasks (their first
instance), every other one with a MISMATCHED response (another task's output), are judged by
the in-process judge stage (``synth_ray.stages.judge.score_dataset``, the jobs' code path)
through one long-lived vllm engine, once per (rubric, output mode):

- free:  unconstrained text, parsed for its last "Score: N" (the papers);
- regex: vLLM structured outputs, "<one reasoning line>\\nScore: N" (the judge's default);
- json:  {"reasoning": ..., "score": N} (optional, --outputs free,regex,json).

Printed per (rubric, mode): parsed samples / samples, the histogram of parsed scores, mean
score of matched and of mismatched pairs and their difference (the separation a curation or
self-rewarding loop relies on), seconds. Last line: ratio=<free seconds / regex seconds> of
the first rubric (how much faster the constrained judge is).

    python benchmarks/judge_parse.py --model <folder or name> [--items 100]
        [--rubrics additive5,curation5] [--samples 1] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import time

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def seed_tasks() -> list[dict]:
    from synth_ray.methods.self_instruct import __file__ as pkg

    path = os.path.join(os.path.dirname(pkg), "seed_tasks.jsonl")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def make_items(n: int) -> list[dict]:
    """Items 0..n-1 from the first n seed tasks; odd items take the response of the task
    n // 2 + 7 places further on (a different task), so half are mismatched."""
    tasks = seed_tasks()
    if n > len(tasks):
        raise SystemExit(f"--items: at most {len(tasks)} (the seed tasks)")
    items = []
    for i in range(n):
        t = tasks[i]
        inst = t["instances"][0]
        source = tasks[(i + n // 2 + 7) % len(tasks)] if i % 2 else t
        items.append(
            {
                "id": f"item{i}",
                "instruction": t["instruction"],
                "input": inst.get("input") or "",
                "output": source["instances"][0]["output"],
                "matched": i % 2 == 0,
            }
        )
    return items


def judge(items, engine, rubric: str, output: str, a) -> tuple[list[dict], float]:
    import ray.data

    from synth_ray.stages.judge import JudgeStageConfig, score_dataset

    cfg = JudgeStageConfig(
        rubric=rubric,
        samples=a.samples,
        max_tokens=a.max_tokens,
        seed=a.seed,
        output=output,
        threshold=None,
    )
    t = time.perf_counter()
    rows = score_dataset(ray.data.from_items(items), cfg, engine).take_all()
    return rows, time.perf_counter() - t


def summarise(rows: list[dict], rubric: str, output: str, seconds: float) -> dict:
    from synth_ray.stages import rubrics

    samples = [s for r in rows for s in r["judge_samples"]]
    counts = rubrics.parse_counts(samples, rubric, output)
    hist = collections.Counter(int(s) for s in samples if s is not None)

    def mean(matched: bool) -> float | None:
        xs = [
            r["judge_score"]
            for r in rows
            if r["matched"] == matched and r["judge_score"] is not None
        ]
        return statistics.mean(xs) if xs else None

    m, mm = mean(True), mean(False)
    return {
        **counts,
        "histogram": dict(sorted(hist.items())),
        "mean_matched": m,
        "mean_mismatched": mm,
        "separation": (m - mm) if m is not None and mm is not None else None,
        "seconds": round(seconds, 1),
    }


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="tiny", help="model name or folder")
    p.add_argument("--items", type=int, default=100)
    p.add_argument("--rubrics", default="additive5")
    p.add_argument("--outputs", default="free,regex")
    p.add_argument("--samples", type=int, default=1)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", help="also write the results here")
    a = p.parse_args()

    import ray

    from synth_ray.engines import build_engine
    from synth_ray.models.resolve import resolve_model
    from synth_ray.runner import init_local_ray

    init_local_ray(8, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    items = make_items(a.items)
    engine = build_engine(
        {"type": "vllm", "lifetime": "run", "max_model_len": 2048}, resolve_model(a.model)
    )
    results = []
    try:
        for rubric in a.rubrics.split(","):
            for output in a.outputs.split(","):
                rows, dt = judge(items, engine, rubric, output, a)
                results.append(summarise(rows, rubric, output, dt))
                print(json.dumps(results[-1]), flush=True)
    finally:
        engine.close()
    print(
        f"\nmodel={a.model} items={a.items} ({a.items - a.items // 2} matched, "
        f"{a.items // 2} mismatched) samples={a.samples} max_tokens={a.max_tokens} seed={a.seed}"
    )
    print(
        f"{'rubric':10s} {'output':6s} {'parsed':>9s} {'rate':>6s} {'matched':>8s} "
        f"{'mismatch':>8s} {'separ.':>7s} {'seconds':>8s}  histogram of parsed scores"
    )
    for r in results:
        print(
            f"{r['rubric']:10s} {r['output']:6s} {r['parsed']:4d}/{r['samples']:<4d} "
            f"{r['parse_rate']:6.2f} {fmt(r['mean_matched']):>8s} {fmt(r['mean_mismatched']):>8s} "
            f"{fmt(r['separation']):>7s} {r['seconds']:8.1f}  {r['histogram']}"
        )
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(results, f, indent=1)
    first = a.rubrics.split(",")[0]
    by = {r["output"]: r for r in results if r["rubric"] == first}
    if "free" in by and "regex" in by:
        print(f"ratio={by['free']['seconds'] / by['regex']['seconds']:.3f}")


if __name__ == "__main__":
    main()
