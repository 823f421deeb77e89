"""Benchmark: Self-Instruct's ROUGE-L novelty filter, rouge-score loop vs NoveltyIndex.

1. Builds a pool of synthetic instruction-like texts (default 50,000; no network: seed
   instructions from ``synth_ray/methods/self_instruct/seed_tasks.jsonl`` are recombined
   clause-wise with content words resampled from a Zipfian vocabulary, seeded RNG).
2. For each candidate, times the way Self-Instruct scores a new instruction -- one
   ``scorer.score(candidate, pool_text)`` per pool text, then ``max(...) > 0.7`` -- against
   ``NoveltyIndex.nearest`` (the same decision: max score and first argmax), on one core,
   and checks that decisions, nearest neighbours and all scores are identical.
3. Times the full bootstrap: 52,000 generated instructions filtered sequentially through
   ``NoveltyIndex.add`` starting from the 175 seed instructions.

   It is run again at threshold 1.0, where every text is kept (the worst case: the pool
   grows to 52,175 texts).

Last line of output: ``ratio=<speedup>`` (total rouge-score loop time / total
``NoveltyIndex.nearest`` time over the candidates; the full pool is scored, no extrapolation).

Usage: python benchmarks/novelty.py [--pool 50000] [--candidates 5] [--bootstrap 52000] [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rouge_score import rouge_scorer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from synth_ray.filters.novelty import NoveltyIndex, tokenize  # noqa: E402

SEED_TASKS = (
    ROOT / "synth_ray" / "methods" / "self_instruct" / "seed_tasks.jsonl"
)  # the packaged copy
STOPWORDS = set(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "and",
        "or",
        "but",
        "is",
        "are",
        "be",
        "as",
        "at",
        "by",
        "from",
        "that",
        "this",
        "these",
        "those",
        "it",
        "its",
        "i",
        "me",
        "my",
        "you",
        "your",
        "we",
        "our",
        "they",
        "their",
        "he",
        "she",
        "his",
        "her",
        "what",
        "which",
        "who",
        "how",
        "why",
        "when",
        "where",
        "if",
        "not",
        "can",
        "could",
        "would",
        "should",
        "will",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "give",
        "write",
        "make",
        "find",
        "list",
    ]
)


def load_seeds(path: Path) -> list[str]:
    """The 175 human-written Self-Instruct seed instructions."""
    with path.open() as f:
        return [json.loads(line)["instruction"] for line in f if line.strip()]


def instruction_generator(seeds: list[str], seed: int, n_pseudo: int = 20000) -> Callable[[], str]:
    """A deterministic source of instruction-like texts.

    Each text takes a seed instruction as template, sometimes splices in a clause of another
    seed, and resamples ~40% of the content words from a Zipfian vocabulary of the seeds'
    words plus ``n_pseudo`` pronounceable pseudo-words (real instruction pools have a
    vocabulary of tens of thousands of words).
    """
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]
    pseudo: set[str] = set()
    while len(pseudo) < n_pseudo:
        pseudo.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    counts = Counter(w for s in seeds for w in tokenize(s) if w not in STOPWORDS)
    vocab = sorted(counts, key=lambda w: (-counts[w], w))  # seed words head the Zipf ranking
    vocab += sorted(pseudo - counts.keys())
    cum_weights = list(itertools.accumulate(1.0 / (r + 10) ** 1.05 for r in range(len(vocab))))
    clauses = [c for s in seeds for c in re.split(r"(?<=[,.;:?])\s+", s) if c]

    def make() -> str:
        words = rng.choice(seeds).split()
        if rng.random() < 0.35:
            cut = rng.randint(1, len(words))
            words = words[:cut] + rng.choice(clauses).split()
        out = []
        for w in words:
            core = w.strip(".,;:?!\"'()").lower()
            if core and core not in STOPWORDS and rng.random() < 0.4:
                w = (
                    w.replace(core, rng.choices(vocab, cum_weights=cum_weights)[0])
                    if core in w
                    else w
                )
            out.append(w)
        return " ".join(out)

    return make


def bench_candidates(pool: list[str], candidates: list[str], repeats: int) -> float:
    """Time rouge-score's loop and NoveltyIndex on each candidate; return the speedup."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    t0 = time.perf_counter()
    index = NoveltyIndex(threshold=0.7, seeds=pool)
    print(
        f"NoveltyIndex build (tokenise + encode {len(pool):,} texts): {time.perf_counter() - t0:.2f} s"
    )
    t0 = time.perf_counter()
    index.nearest(candidates[0]), index.nearest("x " * 70), index.scores(candidates[0])
    print(f"numba warm-up (compile or cache load): {time.perf_counter() - t0:.2f} s")

    total_rouge = total_fast = total_scores = 0.0
    per_candidate = []
    for i, cand in enumerate(candidates):
        t0 = time.perf_counter()
        ref = [scorer.score(cand, p)["rougeL"].fmeasure for p in pool]  # as in Self-Instruct
        best = max(ref)
        ref_decision = not best > 0.7
        t_rouge = time.perf_counter() - t0

        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            j, f = index.nearest(cand)
            decision = f <= index.threshold
            times.append(time.perf_counter() - t0)
        t_fast = statistics.median(times)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            scores = index.scores(cand)
            times.append(time.perf_counter() - t0)
        t_scores = statistics.median(times)

        same = decision == ref_decision and (j, f) == (ref.index(best), best)
        same_scores = bool(np.array_equal(scores, np.array(ref)))
        if not (same and same_scores):
            raise SystemExit(f"MISMATCH on candidate {i}: {cand!r}")
        per_candidate.append(t_rouge / t_fast)
        total_rouge += t_rouge
        total_fast += t_fast
        total_scores += t_scores
        print(
            f"cand {i}: {len(tokenize(cand)):3d} tokens  max={best:.4f} ({'keep' if decision else 'reject'})  "
            f"rouge-score {t_rouge:7.3f} s  NoveltyIndex {t_fast * 1e3:7.3f} ms (x{t_rouge / t_fast:,.0f})  "
            f"all scores {t_scores * 1e3:7.3f} ms (x{t_rouge / t_scores:,.0f})  identical decision+scores"
        )
    print(
        f"total over {len(candidates)} candidates x {len(pool):,} pool texts (full pool, no extrapolation): "
        f"rouge-score {total_rouge:.2f} s, NoveltyIndex.nearest {total_fast * 1e3:.2f} ms "
        f"(median of {repeats}), NoveltyIndex.scores {total_scores * 1e3:.2f} ms"
    )
    print(
        f"speedup: decision (max+argmax) x{total_rouge / total_fast:,.0f} (per candidate: min "
        f"x{min(per_candidate):,.0f}, median x{statistics.median(per_candidate):,.0f}), "
        f"all scores x{total_rouge / total_scores:,.0f}"
    )
    return total_rouge / total_fast


def bench_bootstrap(seeds: list[str], n: int, threshold: float) -> None:
    """Filter ``n`` generated instructions sequentially, as the Self-Instruct bootstrap does."""
    make = instruction_generator(seeds, seed=2)
    texts = [make() for _ in range(n)]
    print(
        f"bootstrap at threshold {threshold}"
        + (" (worst case: every text is kept)" if threshold >= 1 else "")
    )
    index = NoveltyIndex(threshold=threshold, seeds=seeds)
    t0 = time.perf_counter()
    kept = 0
    for start in range(0, n, 10_000):
        kept += sum(index.add(texts[start : start + 10_000]))
        print(
            f"  bootstrap {min(start + 10_000, n):,}/{n:,}: kept {kept:,}, pool {len(index):,}, {time.perf_counter() - t0:.1f} s"
        )
    dt = time.perf_counter() - t0
    print(
        f"bootstrap: {n:,} generated instructions filtered sequentially in {dt:.1f} s ({dt / n * 1e3:.2f} ms each); kept {kept:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pool", type=int, default=50_000, help="pool size for the per-candidate timing"
    )
    parser.add_argument("--candidates", type=int, default=5, help="number of candidates to time")
    parser.add_argument(
        "--repeats", type=int, default=7, help="NoveltyIndex timing repeats (median)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=52_000, help="generated instructions to filter (0: skip)"
    )
    parser.add_argument("--seed-tasks", type=Path, default=SEED_TASKS)
    parser.add_argument(
        "--quick", action="store_true", help="small run: pool 5000, 3 candidates, bootstrap 5000"
    )
    args = parser.parse_args()
    if args.quick:
        args.pool, args.candidates, args.bootstrap = 5_000, 3, 5_000

    seeds = load_seeds(args.seed_tasks)
    make = instruction_generator(seeds, seed=0)
    pool = [make() for _ in range(args.pool)]
    lengths = [len(tokenize(t)) for t in pool]
    vocab = {w for t in pool for w in tokenize(t)}
    print(
        f"pool: {len(pool):,} synthetic instructions, tokens/text mean {statistics.mean(lengths):.1f} "
        f"median {statistics.median(lengths):.0f} max {max(lengths)}, vocabulary {len(vocab):,}; e.g. {pool[0]!r}"
    )
    rng = random.Random(1)
    make_cand = instruction_generator(seeds, seed=1)
    candidates = []
    for i in range(args.candidates):
        if i % 5 == 1:  # a near-duplicate of a pool text (rejected)
            words = pool[rng.randrange(len(pool))].split()
            del words[rng.randrange(len(words))]
            candidates.append(" ".join(words))
        elif i % 5 == 2:  # a long one (> 64 tokens: multi-word kernel)
            long = make_cand()
            while len(tokenize(long)) <= 64:
                long += " " + make_cand()
            candidates.append(long)
        elif i % 5 == 4:
            candidates.append(rng.choice(seeds))
        else:
            candidates.append(make_cand())
    ratio = bench_candidates(pool, candidates, args.repeats)
    if args.bootstrap:
        bench_bootstrap(seeds, args.bootstrap, threshold=0.7)
        bench_bootstrap(seeds, args.bootstrap, threshold=1.0)
    print(f"ratio={ratio}")


if __name__ == "__main__":
    main()
