"""Exactness tests for the ROUGE-L novelty filter against the `rouge-score` package."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from rouge_score import rouge_scorer, scoring
from rouge_score import tokenize as rouge_tokenize

from synth_ray.filters.novelty import NoveltyIndex, rouge_l, tokenize

# The 175 Self-Instruct seed tasks shipped in the package (a byte-exact copy of the upstream file:
# tests/methods/test_self_instruct_parse.py).
SEED_TASKS = (
    Path(__file__).resolve().parents[2]
    / "synth_ray"
    / "methods"
    / "self_instruct"
    / "seed_tasks.jsonl"
)
SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

EDGE_CASES = [
    "",
    " ",
    "\n\t",
    "!!!",
    "?!.,;:-_()[]{}",
    "...",
    "—",
    "a",
    "A",
    "0",
    "42",
    "3.14159",
    "1,000,000",
    "Hello, WORLD!",
    "hello world",
    "HeLLo wOrLd hello",
    "don't stop",
    "e-mail re-send",
    "snake_case_name",
    "café naïve résumé",
    "cafe naive resume",
    "Ångström Øre straße STRASSE",
    "Ελληνικά κείμενο",
    "漢字とかな",
    "中文 测试 ok",
    "emoji 😀 test 🚀🚀 ok",
    "😀",
    "full-width ＡＢＣ １２３ abc 123",
    "\u212a kelvin K",
    "\u0130stanbul istanbul",
    "x\u00b2 + y\u00b2 = z\u00b2",
    "٣ arabic-indic ٣",
    "non\u00a0breaking\u2003space",
    "tab\tsep\nnew line",
    "MiXeD 123abc ABC123 abc-123",
    "Write a poem about the sea.",
    "write a poem about the sea",
    "Write a poem about the sea and the sky.",
]


def ref_f(target: str, prediction: str) -> float:
    return SCORER.score(target, prediction)["rougeL"].fmeasure


def load_instructions() -> list[str]:
    with SEED_TASKS.open() as f:
        return [json.loads(line)["instruction"] for line in f if line.strip()]


def mutate(text: str, rng: random.Random, vocab: list[str], n_edits: int) -> str:
    """Word-level swaps / deletions / insertions / replacements."""
    words = text.split()
    for _ in range(n_edits):
        op = rng.randrange(4)
        if op == 0 and len(words) > 1:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == 1 and words:
            del words[rng.randrange(len(words))]
        elif op == 2:
            words.insert(rng.randrange(len(words) + 1), rng.choice(vocab))
        elif words:
            words[rng.randrange(len(words))] = rng.choice(vocab)
    return " ".join(words)


def mutated_corpus(instructions: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocab = [w for s in instructions for w in s.split()]
    return [mutate(rng.choice(instructions), rng, vocab, rng.randint(0, 5)) for _ in range(n)]


def random_long(rng: random.Random, n_tokens: int, vocab_size: int) -> str:
    return " ".join(f"w{rng.randrange(vocab_size)}" for _ in range(n_tokens))


def tie_text(n_target: int, n_pred: int, lcs: int, tag: str) -> tuple[str, str]:
    """A (target, prediction) pair with these token counts and exactly this LCS length."""
    target = [f"{tag}t{i}" for i in range(n_target)]
    pred = target[:lcs] + [f"{tag}p{i}" for i in range(n_pred - lcs)]
    return " ".join(target), " ".join(pred)


# -- tokenisation and pairwise scores ----------------------------------------------------


def test_tokenize_matches_rouge_score() -> None:
    rng = random.Random(0)
    alphabet = "aZ09 .,-_'\t\n\u00e9\u00df\u0130\u212a\u00b2\uff21\u4e2d\U0001f600\u0663\u00a0"
    texts = EDGE_CASES + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(3000)
    ]
    for text in texts:
        assert tokenize(text) == rouge_tokenize.tokenize(text, None), text


def test_rouge_l_equals_rouge_score_on_seed_instructions() -> None:
    instructions = load_instructions()
    for a in instructions:
        for b in instructions[::4]:
            assert rouge_l(a, b) == ref_f(a, b), (a, b)


def test_rouge_l_equals_rouge_score_on_mutations() -> None:
    instructions = load_instructions()
    rng = random.Random(1)
    vocab = [w for s in instructions for w in s.split()]
    near = 0
    for _ in range(3000):
        source = rng.choice(instructions)
        mutated = mutate(source, rng, vocab, rng.randint(1, 6))
        for other in (source, rng.choice(instructions)):
            f = rouge_l(mutated, other)
            assert f == ref_f(mutated, other), (mutated, other)
            assert rouge_l(other, mutated) == ref_f(other, mutated) == f  # symmetric, exactly
            near += 0.6 <= f <= 0.8
    assert near > 500  # many scores close to the 0.7 threshold


def test_rouge_l_edge_cases() -> None:
    for a in EDGE_CASES:
        for b in EDGE_CASES:
            assert rouge_l(a, b) == ref_f(a, b), (a, b)
    assert rouge_l("", "") == 0.0 and rouge_l("!!!", "hello") == 0.0 and rouge_l("😀", "😀") == 0.0
    assert rouge_l("Hello, WORLD!", "hello world") == 1.0
    assert rouge_l("\u212a", "k") == 1.0  # str.lower() maps the Kelvin sign to ASCII k


@pytest.mark.parametrize(
    "n_target,n_pred", [(63, 64), (64, 64), (65, 30), (128, 129), (200, 210), (700, 90), (5, 300)]
)
def test_rouge_l_long_texts(n_target: int, n_pred: int) -> None:
    rng = random.Random(n_target * 1000 + n_pred)
    for vocab_size in (2, 5, 40, 1000):
        for _ in range(4):
            a, b = random_long(rng, n_target, vocab_size), random_long(rng, n_pred, vocab_size)
            assert rouge_l(a, b) == ref_f(a, b)
    a = random_long(rng, n_target, 50)  # long near-duplicates
    b = mutate(a, rng, ["zz", "w1", "w2"], n_edits=max(1, n_target // 10))
    assert rouge_l(a, b) == ref_f(a, b) and rouge_l(b, a) == ref_f(b, a)


def test_float_ties_around_threshold() -> None:
    """Rational 0.7 is not always float 0.7: decisions follow rouge-score's float exactly."""
    cases = [
        (n, m, lcs)
        for n in range(1, 41)
        for m in range(1, 41)
        for lcs in range(1, min(n, m) + 1)
        if abs(scoring.fmeasure(lcs / m, lcs / n) - 0.7) < 1e-9
    ]
    assert (10, 10, 7) in cases and len(cases) > 20
    for n, m, lcs in cases:
        target, pred = tie_text(n, m, lcs, tag="x")
        expected = ref_f(target, pred)
        assert rouge_l(target, pred) == expected
        index = NoveltyIndex(threshold=0.7, seeds=[pred])
        assert index.add([target]) == [expected <= 0.7]
    # 7 of 10 vs 10 tokens is exactly 0.7 in float: kept; 7 of 8 vs 12 is 0.7000000000000001: rejected.
    target, pred = tie_text(10, 10, 7, tag="y")
    assert ref_f(target, pred) == 0.7 and NoveltyIndex(seeds=[pred]).add([target]) == [True]
    target, pred = tie_text(8, 12, 7, tag="y")
    assert ref_f(target, pred) > 0.7 and NoveltyIndex(seeds=[pred]).add([target]) == [False]


def test_nearest_prefers_larger_float_among_equal_rationals() -> None:
    """Both pool texts score 7/20 rationally; the second is one ulp higher in float."""
    target = " ".join(f"t{i}" for i in range(8))
    first = " ".join(
        [f"t{i}" for i in range(6)] + ["p0", "p1", "p2", "p3", "p4", "p5"]
    )  # lcs 6, F=0.6
    tie = " ".join([f"t{i}" for i in range(7)] + [f"q{i}" for i in range(5)])  # lcs 7 of 8 vs 12
    exact = " ".join([f"t{i}" for i in range(7)] + [f"r{i}" for i in range(3)])  # lcs 7 of 8 vs 10
    pool = [first, exact, tie]
    index = NoveltyIndex(threshold=1.0, seeds=pool)
    expected = [ref_f(target, p) for p in pool]
    assert list(index.scores(target)) == expected
    assert index.nearest(target) == (int(np.argmax(expected)), max(expected))


# -- NoveltyIndex against the Self-Instruct reference loop -----------------------------


def reference_filter(
    seeds: list[str], texts: list[str], threshold: float
) -> list[tuple[bool, int, float]]:
    """Self-Instruct's loop: score against seeds + kept, reject if max > threshold."""
    pool, out = list(seeds), []
    for text in texts:
        scores = [ref_f(text, p) for p in pool]
        if not scores:
            out.append((True, -1, 0.0))
            pool.append(text)
            continue
        best = max(scores)
        kept = not best > threshold
        out.append((kept, scores.index(best), best))
        if kept:
            pool.append(text)
    return out


@pytest.mark.parametrize("threshold", [0.7, 0.5])
def test_index_matches_reference_loop(threshold: float) -> None:
    instructions = load_instructions()
    rng = random.Random(3)
    seeds = instructions[:40]
    texts = mutated_corpus(instructions, 250, seed=4) + ["", "???", "", seeds[0], seeds[0].upper()]
    texts += [random_long(rng, rng.choice([70, 130, 260]), 30) for _ in range(6)]
    texts += [mutate(t, rng, ["w1", "zz"], 3) for t in texts[-6:]]
    rng.shuffle(texts)
    expected = reference_filter(seeds, texts, threshold)

    index = NoveltyIndex(threshold=threshold, seeds=seeds)
    got = index.add_detailed(texts[:100]) + index.add_detailed(texts[100:])  # batches do not matter
    assert [(d.kept, d.nearest, d.score) for d in got] == expected
    assert 0 < sum(d.kept for d in got) < len(texts)
    kept = [t for t, (k, _, _) in zip(texts, expected) if k]
    assert (
        index.kept == kept and index.pool == seeds + kept and len(index) == len(seeds) + len(kept)
    )
    assert index.n_seeds == len(seeds)
    for d in got:
        if d.nearest >= 0:
            assert d.nearest_text == index.pool[d.nearest]
    for probe in texts[:25]:
        assert list(index.scores(probe)) == [ref_f(probe, p) for p in index.pool]
    assert NoveltyIndex(threshold=threshold, seeds=seeds).add(texts) == [k for k, _, _ in expected]


def test_index_long_candidates_against_long_pool() -> None:
    """Multi-word kernel path with pruning: lengths > 64 and > 200 on both sides."""
    rng = random.Random(5)
    base = [random_long(rng, rng.choice([3, 40, 64, 65, 100, 201, 400]), 25) for _ in range(30)]
    texts = base + [
        mutate(t, rng, ["w0", "w1", "w99"], rng.randint(1, 12)) for t in base for _ in range(2)
    ]
    rng.shuffle(texts)
    expected = reference_filter(base[:5], texts, 0.7)
    got = NoveltyIndex(seeds=base[:5]).add_detailed(texts)
    assert [(d.kept, d.nearest, d.score) for d in got] == expected


def test_index_basics() -> None:
    index = NoveltyIndex()
    assert len(index) == 0 and index.nearest("anything") == (-1, 0.0) and index.is_novel("x")
    assert index.scores("x").shape == (0,)
    assert index.add(["Write a poem.", "write a POEM", "", "Summarise the article."]) == [
        True,
        False,
        True,
        True,
    ]
    assert index.kept == ["Write a poem.", "", "Summarise the article."]
    assert index.nearest("write a poem please") == (
        0,
        rouge_l("write a poem please", "Write a poem."),
    )
    assert index.nearest("") == (0, 0.0)  # no tokens: 0.0 against everything, first index
    assert not index.is_novel("Write a poem!") and len(index) == 3
    assert NoveltyIndex(threshold=1.0).add(["a b", "a b"]) == [True, True]
    assert NoveltyIndex(threshold=0.0).add(["a b", "c d", "b z"]) == [True, True, False]
