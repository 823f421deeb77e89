"""K-wise ranking bookkeeping (pure; no Ray, no engine): the shuffle each judgement shows, the
judge's output format and its parser, the mapping back to the original responses, mean ranks
over several judgements, the final order with its ties, and the pairwise rows derived from it.

Conventions: the K responses of a prompt have original indices ``0..K-1`` (responder order, then
sample order). A judgement shows them in a shuffled order ``perm``: shown position ``p`` (label
``LABELS[p]``) is original response ``perm[p]``. The judge answers an ordering of labels, best
first; :func:`ranks_from_order` maps it back to a rank per original response (1 = best).
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass
from typing import Any

from synth_ray.io.ids import stable_hash

LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_K = len(LABELS)
RANKING_PREFIX = "Ranking:"
SEPARATOR = " > "


def shuffle(k: int, seed: int, key: str, judgement: int) -> list[int]:
    """The order judgement ``judgement`` of item ``key`` shows the K responses in: ``perm[p]``
    is the original index shown at position ``p``. Seeded and deterministic (a rerun shows the
    same order); every judgement of an item gets its own draw."""
    perm = list(range(k))
    random.Random(int(stable_hash(seed, key, judgement, length=16), 16)).shuffle(perm)
    return perm


def labels(k: int) -> list[str]:
    if not 2 <= k <= MAX_K:
        raise ValueError(f"k-wise ranking needs 2..{MAX_K} responses, not {k}")
    return list(LABELS[:k])


# -- the judge's output: constraint and parser ------------------------------------------------


def ranking_regex(k: int, reason_chars: int | None, exact_up_to: int = 5) -> str:
    """A regex for '<one reasoning line>\\nRanking: C > A > B' (no reasoning line when
    ``reason_chars`` is None). Up to ``exact_up_to`` responses it lists every permutation, so
    only a permutation can be written (5! = 120 alternatives); above, it allows K labels from
    the set (7! = 5040 would make the grammar slow to build) and the parser rejects repeats."""
    labs = labels(k)
    if k <= exact_up_to:
        body = "(" + "|".join(SEPARATOR.join(p) for p in itertools.permutations(labs)) + ")"
    else:
        one = "[" + "".join(labs) + "]"
        body = one + f"({SEPARATOR}{one}){{{k - 1}}}"
    head = "" if reason_chars is None else f"[^\\n]{{1,{int(reason_chars)}}}\\n"
    return head + re.escape(RANKING_PREFIX) + " " + body


def ranking_schema(k: int, reason_chars: int | None) -> dict[str, Any]:
    """JSON {reasoning, ranking: [K labels]} with labels from the set (uniqueItems is not
    enforced by every grammar backend: the parser checks it)."""
    labs = labels(k)
    props: dict[str, Any] = {
        "ranking": {
            "type": "array",
            "items": {"type": "string", "enum": labs},
            "minItems": k,
            "maxItems": k,
            "uniqueItems": True,
        }
    }
    required = ["ranking"]
    if reason_chars is not None:
        props = {"reasoning": {"type": "string", "maxLength": int(reason_chars)}, **props}
        required = ["reasoning", "ranking"]
    return {"type": "object", "properties": props, "required": required}


@dataclass(frozen=True)
class Parsed:
    order: list[int] | None  # shown positions, best first; None when the text is no permutation
    reason: str | None  # why not (a reject reason), None when parsed
    detail: str = ""


def _check(tokens: list[str], k: int) -> Parsed:
    labs = labels(k)
    if len(tokens) != k:
        return Parsed(None, "wrong_length", f"{len(tokens)} labels for {k} responses")
    unknown = [t for t in tokens if t not in labs]
    if unknown:
        return Parsed(None, "unknown_label", f"{unknown[0]!r} is not one of {''.join(labs)}")
    if len(set(tokens)) != k:
        dup = next(t for t in tokens if tokens.count(t) > 1)
        return Parsed(None, "duplicate_label", f"{dup!r} ranked twice")
    return Parsed([labs.index(t) for t in tokens], None)


_LINE = re.compile(re.escape(RANKING_PREFIX) + r"[ \t]*([^\n]*)")
_TOKEN = re.compile(r"\[?\s*([A-Za-z])\s*\]?")


def parse_ranking(text: str, k: int, output: str = "regex") -> Parsed:
    """The judge's ordering of ``k`` labelled responses (shown positions, best first), or the
    reason it is none: ``no_ranking`` (no 'Ranking:' line / no JSON ranking), ``wrong_length``,
    ``unknown_label``, ``duplicate_label``, ``empty``. ``output`` json reads {ranking: [...]},
    the others the last 'Ranking:' line ('A > B > C', brackets and case tolerated)."""
    text = text or ""
    if not text.strip():
        return Parsed(None, "empty", "the judge wrote nothing")
    if output == "json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return Parsed(None, "no_ranking", f"not JSON: {exc}")
        ranking = obj.get("ranking") if isinstance(obj, dict) else None
        if not isinstance(ranking, list) or not all(isinstance(t, str) for t in ranking):
            return Parsed(None, "no_ranking", "no 'ranking' list of labels")
        return _check([t.strip().strip("[]").upper() for t in ranking], k)
    lines = _LINE.findall(text)
    if not lines:
        return Parsed(None, "no_ranking", f"no '{RANKING_PREFIX}' line: {text[-120:]!r}")
    parts = [p.strip() for p in lines[-1].split(">")]
    tokens = []
    for p in parts:
        m = _TOKEN.fullmatch(p)
        if not m:
            return Parsed(None, "unknown_label", f"{p[:40]!r} is not a label")
        tokens.append(m.group(1).upper())
    return _check(tokens, k)


# -- mapping back, mean ranks, order, ties ----------------------------------------------------


def ranks_from_order(order: list[int], perm: list[int]) -> list[float]:
    """Rank (1 = best) of each ORIGINAL response, from a judged order of shown positions and
    the permutation that judgement showed."""
    k = len(perm)
    if sorted(order) != list(range(k)):
        raise ValueError(f"order {order} is not a permutation of {k} positions")
    ranks = [0.0] * k
    for place, shown in enumerate(order):
        ranks[perm[shown]] = float(place + 1)
    return ranks


def ranks_from_scores(scores: list[float]) -> list[float]:
    """Ranks (1 = best) from scores, higher better; equal scores share their mean rank."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mean_ranks(judged: list[list[float]]) -> list[float]:
    """Mean rank of each response over the parsed judgements (each a rank per response)."""
    if not judged:
        raise ValueError("mean_ranks: no judgement")
    k = len(judged[0])
    return [sum(r[i] for r in judged) / len(judged) for i in range(k)]


def final_order(means: list[float]) -> tuple[list[int], list[list[int]]]:
    """(original indices best first, tie groups). Equal mean ranks keep the original order
    (responder, then sample) in the list; each group of 2+ equal means is reported."""
    order = sorted(range(len(means)), key=lambda i: (means[i], i))
    groups: dict[float, list[int]] = {}
    for i in order:
        groups.setdefault(means[i], []).append(i)
    return order, [g for g in groups.values() if len(g) > 1]


def derived_pairs(
    order: list[int], means: list[float], texts: list[str], mode: str = "all"
) -> tuple[list[tuple[int, int]], dict[str, int]]:
    """Pairs (better, worse) of original indices from a ranked item, and the pairs skipped.

    ``all``: every pair of the K (K(K-1)/2: Starling's 183k prompts x 21 = 3.8M comparisons);
    ``best_vs_rest``: the first against each other; ``best_worst``: first against last. A pair
    of equal mean rank (a tie) or of identical texts carries no preference and is skipped."""
    if mode == "all":
        cand = [(order[a], order[b]) for a in range(len(order)) for b in range(a + 1, len(order))]
    elif mode == "best_vs_rest":
        cand = [(order[0], o) for o in order[1:]]
    elif mode == "best_worst":
        cand = [(order[0], order[-1])] if len(order) > 1 else []
    else:
        raise ValueError(f"pairs: {mode!r} is not all, best_vs_rest or best_worst")
    pairs, skipped = [], {"tie": 0, "identical_responses": 0}
    for better, worse in cand:
        if means[better] == means[worse]:
            skipped["tie"] += 1
        elif texts[better].strip() == texts[worse].strip():
            skipped["identical_responses"] += 1
        else:
            pairs.append((better, worse))
    return pairs, skipped
