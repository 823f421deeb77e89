"""Quality figures of every generation method on one model: WRAP, Self-Instruct, Alpaca and
Unnatural Instructions, each run by the jobs' own runner (``synth_ray.runner.run_job``) from
``jobs/<method>.yaml`` with small-run overrides, then read back from OUTPUT_DIR (``data/``,
``instructions/``, ``dataset/``, ``rejects/``, ``run.json``).

Printed per method: yield (kept / requested: rows kept against generation requests sent, and
against the run's target), the top reject reasons with counts, output length statistics
(words: median, mean, p10, p90). WRAP, per style: ROUGE-L of each rephrasing against its
source chunk (``synth_ray.filters.novelty.rouge_l``, the Self-Instruct filter's exact
ROUGE-L) and the share of degenerate outputs: empty, truncated (cut by max_tokens),
repetitive (over 30% of its word 4-grams are repeats). Self-Instruct: the histogram of each
new instruction's highest ROUGE-L against the pool (the paper's Figure: kept instructions
and those rejected as too similar, 0.1 bins).

    python benchmarks/quality.py --model <folder or name> [--out /tmp/quality]
        [--methods wrap,self_instruct,alpaca,unnatural] [--wrap-docs 6] [--target 40]
        [--set METHOD:key=value ...]

WRAP runs with ``prompt_format: chat`` unless --set wrap:prompt_format=... says otherwise.
Outputs of earlier runs in --out are reused (the jobs resume); pass --fresh to start over.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import time

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("wrap", "self_instruct", "alpaca", "unnatural")


def overrides(method: str, a, out: str) -> list[str]:
    common = [f"model={a.model}", f"output_dir={out}"]
    per = {
        "wrap": [f"input={a.wrap_input}", "prompt_format=chat", "mix.enabled=false"],
        "self_instruct": [
            f"target_instructions={a.target}",
            f"requests_per_round={a.per_round}",
            f"max_rounds={a.rounds}",
        ],
        "alpaca": [
            f"target_instructions={a.target}",
            f"requests_per_round={max(1, a.per_round // 4)}",
            f"max_rounds={a.rounds}",
            "sampling.max_tokens=1536",
        ],
        "unnatural": [
            f"target_examples={a.target}",
            f"requests_per_round={a.per_round}",
            f"max_rounds={a.rounds}",
        ],
    }[method]
    extra = [s.split(":", 1)[1] for s in a.set if s.split(":", 1)[0] == method]
    return common + per + extra


def run_method(method: str, a) -> dict:
    from synth_ray.runner import load_job_config, run_job

    out = os.path.join(a.out, method)
    if a.report_only:  # read back an earlier run
        with open(os.path.join(out, "run.json")) as f:
            record = json.load(f)
        return {**record, "_seconds": record["timings_s"]["wall"], "_out": out}
    if a.fresh and os.path.exists(out):
        shutil.rmtree(out)
    cfg = load_job_config(os.path.join(REPO, "jobs", f"{method}.yaml"), overrides(method, a, out))
    t = time.perf_counter()
    record = run_job(cfg)
    record["_seconds"] = time.perf_counter() - t
    record["_out"] = out
    return record


# -- reading a run back ---------------------------------------------------------------------


def table(path: str):
    from synth_ray.io.layout import read_parquet_dir

    t = read_parquet_dir(path)
    return t.to_pylist() if t is not None else []


def rejects(out: str) -> list[dict]:
    from synth_ray.io.rejects import read_rejects

    return read_rejects(os.path.join(out, "rejects")).to_pylist()


def words(text: str) -> list[str]:
    return (text or "").split()


def length_stats(texts: list[str]) -> str:
    n = sorted(len(words(t)) for t in texts)
    if not n:
        return "no outputs"
    q = statistics.quantiles(n, n=10, method="inclusive") if len(n) > 1 else [n[0]] * 9
    return (
        f"words median {statistics.median(n):.0f}, mean {statistics.mean(n):.1f}, "
        f"p10 {q[0]:.0f}, p90 {q[-1]:.0f} (n={len(n)})"
    )


def repetitive(text: str, n: int = 4, share: float = 0.3) -> bool:
    w = words(text)
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    if len(grams) < 8:
        return False
    return 1 - len(set(grams)) / len(grams) > share


def top_reasons(rows: list[dict], k: int = 5) -> str:
    c = collections.Counter(r["reason"] for r in rows)
    return ", ".join(f"{r} {n}" for r, n in c.most_common(k)) or "none"


def requests_sent(record: dict) -> int:
    counts = record.get("counts", {})
    if "generation" in counts:
        return sum(s["requested"] for s in counts["generation"].values())
    return int(counts.get("requested", 0))


def report_wrap(record: dict) -> list[str]:
    from synth_ray.filters.novelty import rouge_l

    out = record["_out"]
    rows = [r for r in table(os.path.join(out, "data")) if not r.get("error")]
    requested = record["counts"].get("requested", 0)
    usable = [
        r
        for r in rows
        if (r["completion"] or "").strip()
        and r["finish_reason"] != "length"
        and not repetitive(r["completion"])
    ]
    lines = [
        f"yield: {len(usable)}/{requested} usable rephrasings (generated {len(rows)}; "
        f"usable = not empty, not truncated, not repetitive)",
        f"rejects: {top_reasons(rejects(out))}",
        f"lengths: {length_stats([r['completion'] for r in rows])}",
        f"{'style':8s} {'n':>4s} {'ROUGE-L med':>11s} {'mean':>6s} {'empty':>6s} "
        f"{'trunc':>6s} {'repet':>6s} {'degenerate':>10s}",
    ]
    by_style = collections.defaultdict(list)
    for r in rows:
        by_style[r["style"]].append(r)
    for style, rs in by_style.items():
        scores = [rouge_l(r["input_text"], r["completion"] or "") for r in rs]
        empty = sum(not (r["completion"] or "").strip() for r in rs)
        trunc = sum(r["finish_reason"] == "length" for r in rs)
        rep = sum(repetitive(r["completion"] or "") for r in rs)
        degen = sum(
            not (r["completion"] or "").strip()
            or r["finish_reason"] == "length"
            or repetitive(r["completion"] or "")
            for r in rs
        )
        lines.append(
            f"{style:8s} {len(rs):4d} {statistics.median(scores):11.3f} "
            f"{statistics.mean(scores):6.3f} {empty / len(rs):6.0%} {trunc / len(rs):6.0%} "
            f"{rep / len(rs):6.0%} {degen / len(rs):10.0%}"
        )
    return lines


def report_instructions(method: str, record: dict, target: int) -> list[str]:
    out = record["_out"]
    data = table(os.path.join(out, "dataset"))
    rej = rejects(out)
    sent = requests_sent(record)
    lines = [
        f"yield: {len(data)} dataset rows / {sent} generation requests "
        f"({len(data) / sent if sent else 0:.2f} per request); target {target} "
        f"({len(data) / target:.0%}); instructions {record['counts'].get('instructions', '-')}",
        f"rejects ({len(rej)}): {top_reasons(rej)}",
        f"lengths: instruction {length_stats([r['instruction'] for r in data])}",
        f"lengths: output      {length_stats([r['output'] for r in data])}",
    ]
    if method == "self_instruct":
        lines += rouge_histogram(out, rej)
    return lines


def rouge_histogram(out: str, rej: list[dict]) -> list[str]:
    kept = [r["max_rouge_l"] for r in table(os.path.join(out, "instructions"))]
    too_close = [
        float(r["detail"].split(" ", 1)[0]) for r in rej if r["reason"] == "rouge_l_too_similar"
    ]
    bins = collections.Counter(min(int(x * 10), 9) for x in kept + too_close)
    total = len(kept) + len(too_close)
    lines = [
        f"highest ROUGE-L vs the pool: {len(kept)} kept (< threshold), {len(too_close)} "
        "rejected as too similar"
    ]
    for b in range(10):
        n = bins.get(b, 0)
        bar = "#" * round(40 * n / total) if total else ""
        lines.append(f"  [{b / 10:.1f}, {(b + 1) / 10:.1f}) {n:4d} {bar}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="tiny")
    p.add_argument("--out", default="/tmp/synth-ray-quality")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--wrap-docs", type=int, default=6, help="first N example documents")
    p.add_argument("--target", type=int, default=40, help="instructions/examples per method")
    p.add_argument("--per-round", type=int, default=16, help="requests per round")
    p.add_argument("--rounds", type=int, default=3, help="max rounds per method")
    p.add_argument("--set", action="append", default=[], help="METHOD:key=value override")
    p.add_argument("--fresh", action="store_true", help="delete earlier outputs first")
    p.add_argument("--report-only", action="store_true", help="only read back --out's runs")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    a.wrap_input = os.path.join(a.out, "wrap_docs.jsonl")
    with open(os.path.join(REPO, "examples", "c4_sample.jsonl")) as f:
        docs = [line for line in f if line.strip()][: a.wrap_docs]
    with open(a.wrap_input, "w") as f:
        f.writelines(docs)

    if not a.report_only:
        import ray

        from synth_ray.runner import init_local_ray

        init_local_ray(8, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
    report = []
    for method in a.methods.split(","):
        record = run_method(method, a)
        lines = (
            report_wrap(record)
            if method == "wrap"
            else report_instructions(method, record, a.target)
        )
        head = f"== {method} ({record['_seconds']:.0f} s, status {record['status']})"
        report.append("\n".join([head, *lines]))
        print(report[-1], flush=True)
    print(f"\nmodel={a.model} out={a.out}\n")
    print("\n\n".join(report))


if __name__ == "__main__":
    main()
