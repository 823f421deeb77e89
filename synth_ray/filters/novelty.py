"""Exact, fast ROUGE-L novelty filter: the Self-Instruct diversity filter.

Self-Instruct (Wang et al., 2022; section "Self-Improvement vs. Distillation" of the survey
the project follows, README.md) only adds a generated instruction to the task
pool when its ROUGE-L with every instruction already in the pool is low: the survey says
"less than 0.7", and the reference code (``self_instruct/bootstrap_instructions.py`` in
yizhongw/self-instruct) rejects when ``max(rouge_scores) > 0.7``, so a score of exactly
0.7 is *kept*.  :class:`NoveltyIndex` follows the code: keep iff ``max <= threshold``.

Exactness.  :func:`rouge_l` equals ``RougeScorer(["rougeL"], use_stemmer=False)
.score(target, prediction)["rougeL"].fmeasure`` bit for bit (``==``):

* tokenisation is :func:`rouge_score.tokenize.tokenize` without a stemmer: ``text.lower()``,
  runs of ``[^a-z0-9]`` become spaces, split on whitespace, keep ``^[a-z0-9]+$`` tokens.
  The output of that pipeline is exactly ``re.findall("[a-z0-9]+", text.lower())``, which is
  what :func:`tokenize` computes (non-ASCII letters, CJK and emoji are separators; note
  ``str.lower`` maps e.g. the Kelvin sign to ``k`` and ``İ`` to ``i`` + a combining dot);
* the LCS length is an exact integer (bit-parallel, see below);
* the float formula is ``rouge_scorer._score_lcs`` + ``scoring.fmeasure``: 0.0 if either
  side has no tokens, else ``p = lcs / len(prediction)``, ``r = lcs / len(target)``,
  ``2 * p * r / (p + r)`` (0.0 when ``lcs == 0``), evaluated in IEEE float64 in that order.
  It is exactly symmetric: ``2*p`` is exact and ``*``/``+`` commute, so swapping target and
  prediction gives the same float.  Self-Instruct calls ``scorer.score(new, existing)``
  (target = the new candidate, prediction = the pool instruction); so do we.  The float
  matters at the threshold: 7 common tokens of 10 vs 10 give exactly 0.7 (kept), but 7 of
  8 vs 12 (also 0.7 as a rational) give 0.7000000000000001 (rejected, as in Self-Instruct).

Speed.  The pool is stored once as int32 token ids (CSR; one vocabulary dict).  For a
candidate, per-token match bitmasks over its positions are built (one uint64 word up to 64
tokens, several beyond) and every pool text goes through the bit-parallel LCS recurrence of
Allison-Dix / Hyyrö (Crochemore et al. 2001 form ``V = (V + (V & M)) | (V & ~M)``; LCS =
number of zero bits of ``V``) in a numba kernel.  In the one-word case the whole pool is
one branch-free token stream (a few instructions per pool token, no Python per pair).
The kernel needs ``numba`` (a dependency of this module).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["NoveltyDecision", "NoveltyIndex", "rouge_l", "tokenize"]

_TOKEN_RE = re.compile(r"[a-z0-9]+")

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_NO_SCORES = np.empty(0, np.float64)
_ID_MASK = np.int32(0x7FFFFFFF)
_FIRST = np.int32(-0x80000000)  # sign bit: first token of a pool text
_LIM = 1 << 24  # lengths up to which the exact integer pruning in _scan is valid


def tokenize(text: str) -> list[str]:
    """Tokenise exactly like ``rouge_score.tokenize.tokenize(text, stemmer=None)``."""
    return _TOKEN_RE.findall(text.lower())


@numba.njit(cache=True, inline="always")
def _popcount(x: np.uint64) -> np.int64:  # pragma: no cover - compiled
    x = x - ((x >> _U1) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return np.int64((x * _H01) >> np.uint64(56))


@numba.njit(cache=True, inline="always")
def _fmeasure(
    lcs: np.int64, n_target: np.int64, n_prediction: np.int64
) -> float:  # pragma: no cover
    # rouge_scorer._score_lcs + scoring.fmeasure (callers guarantee both lengths > 0).
    if lcs == 0:
        return 0.0
    precision = lcs / n_prediction
    recall = lcs / n_target
    return 2.0 * precision * recall / (precision + recall)


@numba.njit(cache=True)
def _stream_one_word(toks, n_toks, mask_of, out):  # pragma: no cover - compiled
    """Single-word bit-parallel LCS over the whole pool as one branch-free token stream.

    A set sign bit on a token marks the first token of a pool text: it resets ``V`` to all
    ones and advances the output slot, so ``out[j]`` ends up holding text ``j``'s final ``V``.
    """
    v = _ALL
    j = -1
    for k in range(n_toks):
        t = toks[k]
        first = np.int64(t < 0)
        j += first
        v |= _U0 - np.uint64(first)
        mk = mask_of[t & _ID_MASK]
        v = (v + (v & mk)) | (v & ~mk)
        out[j] = v


@numba.njit(cache=True, inline="always")
def _lcs_words(toks, a, b, row_of, masks, vec, last):  # pragma: no cover - compiled
    """Multi-word bit-parallel LCS of the candidate (``masks``) and ``toks[a:b]``."""
    n_words = vec.shape[0]
    vec[:] = _ALL
    for k in range(a, b):
        r = row_of[toks[k] & _ID_MASK]
        if r == 0:  # token absent from the candidate: V is unchanged
            continue
        carry = _U0
        for w in range(n_words):
            mk = masks[r, w]
            v = vec[w]
            t1 = v + (v & mk)
            s = t1 + carry
            carry = _U1 if (t1 < v or s < t1) else _U0
            vec[w] = s | (v & ~mk)
    lcs = np.int64(0)
    for w in range(n_words - 1):
        lcs += _popcount(~vec[w])
    return lcs + _popcount(~vec[n_words - 1] & last)


@numba.njit(cache=True)
def _scan(cand, toks, offs, lens, n_pool, row_of, mask_of, scores):  # pragma: no cover - compiled
    """ROUGE-L F of ``cand`` (target) against pool texts ``0..n_pool-1`` (predictions).

    The pool is CSR: text ``j`` is ``toks[offs[j]:offs[j+1]]`` (int32 ids, sign bit set on
    the first token; an empty text is one placeholder token of id 0) and has ``lens[j]``
    real tokens.  ``cand`` holds the candidate's ids (-1: not in the pool vocabulary).
    ``row_of`` (int32) and ``mask_of`` (uint64) are all-zero scratch arrays of vocabulary
    size, restored on return.  If ``scores`` is non-empty every score is written to it.
    Returns ``(j, f)``: the first index of the maximum score; ``(-1, -1.0)`` if no pool.

    Without ``scores``, pairs that provably cannot beat the best so far skip the float
    formula (and, for long candidates, the LCS).  This is exact: the float F is within 7 ulp
    (relative) of the rational 2*lcs/(n+m), and two distinct such rationals differ by at
    least 2/((n+m)(n'+m')), far more when both denominators are <= _LIM; so the integer test
    ``lcs/(n+m) < best_lcs/best_d`` (also with the bound lcs <= min(n, m)) implies a float
    strictly below the best float, i.e. a pair that cannot become the (first) argmax.
    """
    n = cand.shape[0]
    want = scores.shape[0] > 0
    if n_pool == 0:
        return -1, -1.0
    if n == 0:  # rouge-score: an empty side scores 0.0 against anything
        if want:
            scores[:n_pool] = 0.0
        return 0, 0.0
    n_words = (n + 63) // 64
    rem = n & 63
    last = _ALL if rem == 0 else (_U1 << np.uint64(rem)) - _U1
    finals = np.empty(n_pool if n_words == 1 else 0, np.uint64)
    uniq = np.empty(n, np.int64)
    n_rows = 1  # multi-word: row 0 is the all-zero mask (token not in the candidate)
    for i in range(n):
        t = cand[i]
        if t >= 0:
            if n_words == 1:
                mask_of[t] |= _U1 << np.uint64(i)
            elif row_of[t] == 0:
                row_of[t] = n_rows
                uniq[n_rows - 1] = t
                n_rows += 1
    masks = np.zeros((n_rows, n_words), np.uint64)
    if n_words == 1:
        _stream_one_word(toks, offs[n_pool], mask_of, finals)
        for i in range(n):
            if cand[i] >= 0:
                mask_of[cand[i]] = _U0
    else:
        for i in range(n):
            if cand[i] >= 0:
                masks[row_of[cand[i]], i >> 6] |= _U1 << np.uint64(i & 63)
    vec = np.empty(n_words, np.uint64)
    best_j, best_f = -1, -1.0
    best_l, best_d = np.int64(-1), np.int64(1)  # the best score as the rational best_l/best_d
    prune = not want and n <= _LIM
    for j in range(n_pool):
        m = lens[j]
        d = n + m
        exact_cmp = prune and d <= _LIM and best_d <= _LIM
        if n_words == 1:
            lcs = _popcount(~finals[j] & last)
        elif m == 0 or (exact_cmp and min(n, m) * best_d < best_l * d):
            lcs = np.int64(0)
        else:
            lcs = _lcs_words(toks, offs[j], offs[j + 1], row_of, masks, vec, last)
        if exact_cmp and lcs * best_d < best_l * d:
            continue
        f = 0.0 if m == 0 else _fmeasure(lcs, n, m)
        if want:
            scores[j] = f
        if f > best_f:
            best_j, best_f, best_l, best_d = j, f, lcs, d
    for i in range(n_rows - 1):
        row_of[uniq[i]] = 0
    return best_j, best_f


def rouge_l(target: str, prediction: str) -> float:
    """ROUGE-L F-measure, ``==`` to rouge-score's ``RougeScorer(["rougeL"]).score(target, prediction)``.

    Symmetric in its arguments (see the module docstring).
    """
    return NoveltyIndex(seeds=[prediction]).nearest(target)[1]


@dataclass(frozen=True)
class NoveltyDecision:
    """Outcome of offering one text to a :class:`NoveltyIndex`.

    ``nearest`` is the pool index (seeds first, then kept texts) of the most similar text
    at decision time (first one on ties), ``-1`` if the pool was empty; ``score`` is its
    ROUGE-L F (0.0 for an empty pool).
    """

    text: str
    kept: bool
    nearest: int
    nearest_text: str | None
    score: float


class NoveltyIndex:
    """Greedy Self-Instruct novelty filter over a growing pool of texts.

    The pool starts with ``seeds`` (added unconditionally, not filtered against each
    other).  A text offered via :meth:`add` is kept (and appended to the pool) iff its
    ROUGE-L F against every pool text is ``<= threshold``; texts are decided in order, so a
    text kept earlier in the same call counts for later ones.  A text with no tokens
    scores 0.0 against everything and is therefore kept, as in Self-Instruct.

    Each text is tokenised once; the pool is kept as int32 token ids.  Not thread-safe
    (queries share scratch buffers).
    """

    def __init__(self, threshold: float = 0.7, seeds: Iterable[str] = ()) -> None:
        self.threshold = float(threshold)
        self._vocab: dict[str, int] = {"": 0}  # id 0: placeholder token of empty texts
        self._texts: list[str] = []
        self._toks = np.zeros(256, np.int32)  # CSR token ids, _FIRST bit on each first token
        self._n_toks = 0
        self._offs = np.zeros(65, np.int64)
        self._lens = np.zeros(64, np.int64)  # real token counts (0 for empty texts)
        self._row_of = np.zeros(256, np.int32)  # kernel scratch, all zero between calls
        self._mask_of = np.zeros(256, np.uint64)
        for text in seeds:
            self._append(text, tokenize(text))
        self._n_seeds = len(self._texts)

    # -- pool access -------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of texts in the pool (seeds + kept)."""
        return len(self._texts)

    @property
    def pool(self) -> list[str]:
        """All pool texts: the seeds, then the kept texts, in insertion order."""
        return list(self._texts)

    @property
    def kept(self) -> list[str]:
        """Texts kept by :meth:`add` (the pool without the seeds)."""
        return self._texts[self._n_seeds :]

    @property
    def n_seeds(self) -> int:
        """Number of seed texts at the start of the pool."""
        return self._n_seeds

    # -- queries -----------------------------------------------------------------------
    def scores(self, text: str) -> np.ndarray:
        """ROUGE-L F of ``text`` (as target) against every pool text, in pool order."""
        out = np.empty(len(self._texts), np.float64)
        if len(out):
            self._scan(self._ids(tokenize(text)), out)
        return out

    def nearest(self, text: str) -> tuple[int, float]:
        """``(pool index, score)`` of the most similar pool text (first on ties).

        ``(-1, 0.0)`` if the pool is empty.
        """
        return self._scan(self._ids(tokenize(text)), _NO_SCORES)

    def is_novel(self, text: str) -> bool:
        """Whether :meth:`add` would keep ``text`` now (without adding it)."""
        return self.nearest(text)[1] <= self.threshold

    # -- updates -----------------------------------------------------------------------
    def add(self, texts: Iterable[str]) -> list[bool]:
        """Offer ``texts`` in order; keep the novel ones.  Returns one flag per text."""
        return [d.kept for d in self.add_detailed(texts)]

    def add_detailed(self, texts: Iterable[str]) -> list[NoveltyDecision]:
        """Like :meth:`add`, also reporting each text's nearest pool text and its score."""
        out = []
        for text in texts:
            tokens = tokenize(text)
            j, f = self._scan(self._ids(tokens), _NO_SCORES)
            kept = f <= self.threshold
            out.append(NoveltyDecision(text, kept, j, self._texts[j] if j >= 0 else None, f))
            if kept:
                self._append(text, tokens)
        return out

    # -- internals ---------------------------------------------------------------------
    def _ids(self, tokens: list[str]) -> np.ndarray:
        """Token ids for a query; -1 for tokens no pool text contains."""
        get = self._vocab.get
        return np.array([get(t, -1) for t in tokens], np.int32)

    def _scan(self, ids: np.ndarray, scores: np.ndarray) -> tuple[int, float]:
        n_pool = len(self._texts)
        if n_pool == 0:
            return -1, 0.0
        j, f = _scan(
            ids, self._toks, self._offs, self._lens, n_pool, self._row_of, self._mask_of, scores
        )
        return int(j), float(f)

    def _append(self, text: str, tokens: list[str]) -> None:
        vocab = self._vocab
        ids = [vocab.setdefault(t, len(vocab)) for t in tokens] or [0]
        if len(vocab) > len(self._row_of):
            self._row_of = np.zeros(2 * len(vocab), np.int32)
            self._mask_of = np.zeros(2 * len(vocab), np.uint64)
        n, k = len(self._texts), len(ids)
        if self._n_toks + k > len(self._toks):
            self._toks = _grown(self._toks, self._n_toks + k)
        if n + 2 > len(self._offs):
            self._offs = _grown(self._offs, n + 2)
        if n + 1 > len(self._lens):
            self._lens = _grown(self._lens, n + 1)
        self._toks[self._n_toks : self._n_toks + k] = ids
        self._toks[self._n_toks] |= _FIRST
        self._n_toks += k
        self._offs[n + 1] = self._n_toks
        self._lens[n] = len(tokens)
        self._texts.append(text)


def _grown(arr: np.ndarray, need: int) -> np.ndarray:
    """A copy of ``arr`` with capacity at least ``need`` (amortised doubling)."""
    out = np.zeros(max(need, 2 * len(arr)), arr.dtype)
    out[: len(arr)] = arr
    return out
