"""The math verifier: the final answer of a solution against the problem's reference answer.

ReST-EM's math reward (survey, "Synthetic data for instruction-tuning": "for math, responses
were verified for correctness via ground truth"). The reference is the row's ``answer`` (GSM8K:
the worked solution ending in ``#### 42``; MATH: a ``\\boxed{}`` or the bare answer). Numbers
compare exactly (``answers.py``); other answers by sympy equivalence in a helper process with a
timeout (``symbolic.py``). Reward 1 only when they are equal.
"""

from __future__ import annotations

from pydantic import Field

from synth_ray.config import StrictModel
from synth_ray.stages.verify.answers import clean, extract_answer, numbers_equal, reference_answer
from synth_ray.stages.verify.base import VERIFIERS, Verdict, Verifier
from synth_ray.stages.verify.symbolic import SymbolicChecker


class MathVerifierConfig(StrictModel):
    answer_field: str = Field(
        "answer",
        description="Column with the reference: a final answer, or a worked solution ending in "
        "GSM8K's '#### answer' or containing \\boxed{answer}.",
    )
    symbolic: bool = Field(
        True,
        description="Compare answers that are not plain numbers by sympy equivalence; off: "
        "they must match as normalised strings.",
    )
    symbolic_timeout_s: float = Field(
        5.0, gt=0, description="Seconds for one symbolic comparison; over it: reward 0, timeout."
    )
    symbolic_memory_mb: int = Field(
        1024, ge=128, description="Address-space limit of the symbolic helper process (MiB)."
    )


@VERIFIERS.register("math")
class MathVerifier(Verifier):
    name = "math"

    def __init__(self, config: MathVerifierConfig | None = None):
        self.config = config or MathVerifierConfig()
        self._symbolic: SymbolicChecker | None = None

    def _checker(self) -> SymbolicChecker:
        if self._symbolic is None:
            c = self.config
            self._symbolic = SymbolicChecker(c.symbolic_timeout_s, c.symbolic_memory_mb)
        return self._symbolic

    def verify(self, problem: dict, output: str) -> Verdict:
        raw = problem.get(self.config.answer_field)
        if raw is None or str(raw).strip() == "":
            return Verdict(0, f"no_reference: the row has no {self.config.answer_field!r}")
        ref = reference_answer(str(raw))
        got, how = extract_answer(output or "")
        if got is None or not clean(got):
            return Verdict(0, "no_answer: no final answer found in the output")
        return self.compare(got, ref, how)

    def compare(self, got: str, ref: str, how: str = "given") -> Verdict:
        """Is answer ``got`` the reference answer ``ref``?"""
        eq = numbers_equal(got, ref)
        if eq is None and clean(got).replace(" ", "") == clean(ref).replace(" ", ""):
            eq = True
        reason = "numeric"
        if eq is None:
            if not self.config.symbolic:
                eq = False
            else:
                eq, reason = self._checker().equal(clean(got), clean(ref))
                if eq is None:
                    code, _, detail = reason.partition(":")
                    return Verdict(
                        0, f"{code}: {got[:80]!r} vs {ref[:80]!r} ({how}):{detail[:200]}"
                    )
        if eq:
            return Verdict(1, f"correct: {got[:80]!r} ({how}, {reason})")
        return Verdict(0, f"wrong_answer: got {got[:80]!r}, expected {ref[:80]!r} ({how})")

    def close(self) -> None:
        if self._symbolic is not None:
            self._symbolic.close()
