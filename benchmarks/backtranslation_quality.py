"""Instruction Backtranslation on a real model: the loop's figures per iteration and a held-out
figure (issue 14's quality run).

    python benchmarks/backtranslation_quality.py --model smollm2-135m --segments 500 \
        --out outputs/bench/backtranslation

Runs ``jobs/backtranslation.yaml`` (2 iterations) with the given overrides, then, for M0 and each
M_{t+1}, greedy answers to held-out instructions (Self-Instruct seed tasks the loop did not train
on) scored by one fixed judge (the base model, the survey's additive 5-point rubric, constrained
to parse). Prints per iteration: augmented pairs, the curation score histogram, A4 and A5, the
training loss at start and end; then each model's mean held-out score and the win rate of the
last model against M0 (ties count half). A rerun reuses everything the loop finished.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def heldout_instructions(skip: int, n: int) -> list[dict]:
    from synth_ray.methods.self_instruct.prompts import load_seed_tasks

    pairs = [
        (t["instruction"] + (f"\n\n{i['input']}" if i["input"] else ""), t["id"])
        for t in load_seed_tasks()
        for i in t["instances"]
    ]
    return [
        {"id": f"heldout-{tid}-{k}", "instruction": q}
        for k, (q, tid) in enumerate(pairs[skip : skip + n])
    ]


def answers(model_spec: str, items: list[dict], out_dir: str, run_id: str) -> dict[str, str]:
    from synth_ray.engines import build_engine
    from synth_ray.engines.base import SamplingConfig
    from synth_ray.engines.vllm_engine import VLLMEngineConfig
    from synth_ray.models.resolve import resolve_model
    from synth_ray.stages.generate import generate_rows
    from synth_ray.stages.records import request_id

    model = resolve_model(model_spec)
    engine = build_engine(VLLMEngineConfig(lifetime="run"), model)
    sampling = SamplingConfig(temperature=0.0, max_tokens=256).to_json()
    rows = []
    for it in items:
        msgs = [{"role": "user", "content": it["instruction"]}]
        rows.append(
            {
                "id": request_id("heldout", msgs, sampling, model.fingerprint),
                "messages": msgs,
                "sampling": sampling,
                "item": it["id"],
            }
        )
    try:
        gens, _ = generate_rows(engine, rows, out_dir, run_id, "messages")
    finally:
        engine.close()
    by_req = {g["request_id"]: g["completion"] for g in gens}
    return {r["item"]: by_req.get(r["id"], "") for r in rows}


def judge(base: str, items: list[dict], answers_of: dict[str, dict[str, str]], out: str):
    from synth_ray.engines import build_engine
    from synth_ray.engines.vllm_engine import VLLMEngineConfig
    from synth_ray.models.resolve import resolve_model
    from synth_ray.stages.judge import JudgeStageConfig, judge_rows

    cfg = JudgeStageConfig(
        rubric="additive5", samples=1, threshold=None, input_field=None, temperature=0.0, seed=0
    )
    engine = build_engine(VLLMEngineConfig(lifetime="run"), resolve_model(base))
    rows = [
        {"id": f"{name}:{it['id']}", "instruction": it["instruction"], "output": ans[it["id"]]}
        for name, ans in answers_of.items()
        for it in items
    ]
    try:
        kept, counts = judge_rows(rows, cfg, engine, f"{out}/judge", f"{out}/rejects")
    finally:
        engine.close()
    scores = {r["id"]: r["extra"]["judge"]["score"] for r in kept}
    return scores, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--segments", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=150, help="seed pairs trained on")
    ap.add_argument("--heldout", type=int, default=50)
    ap.add_argument("--out", default="outputs/bench/backtranslation")
    ap.add_argument("--set", action="append", default=[], help="more job overrides")
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

    from synth_ray.loops.base import read_manifests
    from synth_ray.runner import init_local_ray, load_job_config, run_job

    overrides = [
        f"model={args.model}",
        f"output_dir={args.out}",
        f"max_segments={args.segments}",
        f"max_seeds={args.seeds}",
        *args.set,
    ]
    config = load_job_config("jobs/backtranslation.yaml", overrides)
    init_local_ray()
    t0 = time.perf_counter()
    record = run_job(config)
    loop_s = time.perf_counter() - t0
    manifests = read_manifests(args.out)
    print(f"loop: {record['status']} in {loop_s:.0f} s, engine starts {record['engine_starts']}")
    for m in manifests:
        print(f"iter {m['iteration']}: {json.dumps(m['metrics'], sort_keys=True)}")

    items = heldout_instructions(args.seeds, args.heldout)
    models = {"M0": manifests[0]["stages"]["seed_forward"]["result"]["model"]}
    for m in manifests:
        models[f"M{m['iteration'] + 1}"] = m["model_out"]["source"]
    answers_of = {
        name: answers(path, items, f"{args.out}/heldout/{name}", record["run_id"])
        for name, path in models.items()
    }
    scores, counts = judge(args.model, items, answers_of, f"{args.out}/heldout")
    print(f"held-out judge ({args.model}, additive5, constrained): {json.dumps(counts)}")
    for name in models:
        got = [scores[f"{name}:{it['id']}"] for it in items if f"{name}:{it['id']}" in scores]
        mean = statistics.mean(got) if got else float("nan")
        print(f"{name}: mean held-out score {mean:.3f} over {len(got)} of {len(items)}")
    last = f"M{len(manifests)}"
    wins = ties = n = 0
    for it in items:
        a, b = scores.get(f"{last}:{it['id']}"), scores.get(f"M0:{it['id']}")
        if a is None or b is None:
            continue
        n += 1
        wins += a > b
        ties += a == b
    rate = (wins + 0.5 * ties) / n if n else float("nan")
    print(f"win rate {last} vs M0: {rate:.3f} over {n} held-out instructions (ties half)")


if __name__ == "__main__":
    main()
