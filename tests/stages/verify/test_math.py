"""The math verifier: extraction, tricky equivalences, GSM8K's references, the symbolic checker's
timeout from threads. Real sympy helper process, no Ray."""

from __future__ import annotations

import json
import threading
import time

import pytest

from synth_ray.stages.verify import build_verifier
from synth_ray.stages.verify.answers import extract_answer, numbers_equal, reference_answer
from synth_ray.stages.verify.math_verifier import MathVerifier, MathVerifierConfig
from synth_ray.stages.verify.symbolic import SymbolicChecker

from ...conftest import SHARED_DATA


@pytest.fixture(scope="module")
def math_verifier():
    v = MathVerifier(MathVerifierConfig(symbolic_timeout_s=3))
    yield v
    v.close()


@pytest.mark.parametrize(
    ("text", "answer", "how"),
    [
        ("She pays 3 * 4 = 12 dollars.\n#### 12", "12", "hashes"),
        ("So the area is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}", "boxed"),
        ("Nested: \\boxed{\\sqrt{\\frac{a}{b}}} done", "\\sqrt{\\frac{a}{b}}", "boxed"),
        ("Adding them up, the answer is 1,000 apples.", "1,000 apples", "answer_is"),
        ("Final answer: -7", "-7", "answer_is"),
        ("First 3 then 4 and finally 18 left", "18", "last_number"),
        ("no digits here", None, "none"),
    ],
)
def test_extraction(text, answer, how):
    assert extract_answer(text) == (answer, how)


# (model's answer, reference, equal?)
TRICKY = [
    ("0.5", "1/2", True),
    ("1,000", "1000", True),
    ("$5", "5", True),
    ("\\$5.00", "5", True),
    ("5 dollars", "5", True),
    ("12 km/h", "12", True),
    ("18 apples.", "18", True),
    ("\\frac{3}{4}", "0.75", True),
    ("-\\frac{1}{2}", "-0.5", True),
    ("-3", "3", False),
    ("−3", "-3", True),  # a Unicode minus
    ("50%", "50", True),
    ("50\\%", "0.5", True),
    ("25 percent", "25", True),
    ("0.333", "1/3", False),
    ("1,000", "100", False),
    ("x = 4", "4", True),
    ("\\text{5 cm}", "5", True),
    ("7", "7.0", True),
    ("3 pi", "3", None),  # not a plain number: symbolic
]


@pytest.mark.parametrize(("got", "ref", "equal"), TRICKY)
def test_numeric_equivalences(got, ref, equal):
    assert numbers_equal(got, ref) is equal


@pytest.mark.parametrize(
    ("got", "ref", "reward"),
    [
        ("\\frac{\\sqrt{2}}{2}", "1/sqrt(2)", 1),
        ("2(x+1)", "2x+2", 1),
        ("x^2 + 2x + 1", "(x+1)^2", 1),
        ("(1, 2)", "(1,2)", 1),
        ("3\\pi", "3 pi", 1),
        ("\\sqrt{8}", "2\\sqrt{2}", 1),
        ("x^2", "x^3", 0),
        ("3 pi", "3", 0),
        ("\\dfrac{1}{3}", "1/3", 1),
    ],
)
def test_symbolic_equivalences(math_verifier, got, ref, reward):
    v = math_verifier.compare(got, ref)
    assert v.reward == reward, v.reason


def test_gsm8k_references_verify_themselves(math_verifier):
    """Every GSM8K reference solution, given as the model's output, gets reward 1; shifted
    answers get 0 with the reason wrong_answer."""
    path = SHARED_DATA / "gsm8k_test.jsonl"
    if not path.exists():
        pytest.skip(f"{path} absent")
    rows = [json.loads(line) for line in path.read_text().splitlines()[:300]]
    assert all(math_verifier.verify(r, r["answer"]).reward == 1 for r in rows)
    for r in rows[:50]:
        wrong = str(int(reference_answer(r["answer"]).replace(",", "")) + 1)
        v = math_verifier.verify(r, f"Let me think.\nThe answer is {wrong}.")
        assert (v.reward, v.code) == (0, "wrong_answer"), v.reason
    v = math_verifier.verify(rows[0], "I am not sure.")
    assert (v.reward, v.code) == (0, "no_answer")
    v = math_verifier.verify({"question": "?"}, "#### 3")
    assert (v.reward, v.code) == (0, "no_reference")


def test_hostile_answers_never_reach_python(math_verifier):
    for evil in ("__import__('os').system('id')", "().__class__", "open('/etc/passwd')"):
        v = math_verifier.compare(evil, "1")
        assert v.reward == 0 and v.code == "unparseable", v.reason


def test_symbolic_timeout_off_the_main_thread():
    """A comparison that would run for minutes ends at the timeout, from worker threads, and the
    checker works again afterwards (a fresh helper process)."""
    checker = SymbolicChecker(timeout_s=1.0)
    try:
        results = []

        def slow():
            t = time.monotonic()
            results.append((checker.equal("9^9^9^9", "1"), time.monotonic() - t))

        threads = [threading.Thread(target=slow) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(results) == 2
        for (eq, reason), _ in results:
            assert eq is None and reason.startswith("symbolic_timeout"), reason
        assert max(d for _, d in results) < 10  # serialised by the lock: about 1 s each
        assert checker.equal("2x", "x+x") == (True, "symbolic")
    finally:
        checker.close()


def test_registry_and_unknown_name():
    assert isinstance(build_verifier("math"), MathVerifier)
    with pytest.raises(KeyError, match="unknown verifier 'lean'; known: code, math"):
        build_verifier("lean")
