"""The arithmetic and linear-equation generators: every answer checked three ways (recomputed
from the statement inside the generator, by sympy here, by the math verifier), levels, seeds,
deduplication, the plugin registry. No Ray."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
import sympy

from synth_ray.stages.problems import (
    GENERATORS,
    Problem,
    ProblemGenerator,
    generate_problems,
    sft_row,
)
from synth_ray.stages.problems.arithmetic import linear_form, solve_statement
from synth_ray.stages.verify.math_verifier import MathVerifier


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier()
    yield v
    v.close()


def _sympy_answer(row: dict) -> sympy.Rational:
    q = row["question"]
    if row["domain"] == "arithmetic":
        return sympy.sympify(re.match(r"Compute (.*)\. Give", q).group(1), rational=True)
    lhs, rhs = re.match(r"Solve for x: (.*)\. Give", q).group(1).split("=")
    x = sympy.Symbol("x")
    (sol,) = sympy.solve(sympy.Eq(sympy.sympify(lhs), sympy.sympify(rhs)), x)
    return sol


@pytest.mark.parametrize("name", ["arithmetic", "linear"])
def test_every_answer_verified(name, verifier):
    rows = generate_problems(name, 400, seed=7)
    assert len({r["question"] for r in rows}) == 400  # deduplicated
    assert {r["difficulty"] for r in rows} == {1, 2, 3, 4}
    for r in rows:
        assert sympy.Rational(r["final_answer"]) == _sympy_answer(r), r
        # The worked solution, as a model output, checks against itself; the bare answer too.
        assert verifier.verify(r, r["answer"]).reward == 1, r
        v = verifier.verify(r, f"The answer is {r['final_answer']}.")
        assert v.reward == 1, (r, v)
        wrong = Fraction(r["final_answer"]) + 1
        v = verifier.verify(r, f"#### {wrong}")
        assert (v.reward, v.code) == (0, "wrong_answer"), (r, v)
    assert any("/" in r["final_answer"] for r in rows if r["difficulty"] == 4)


def test_seeded_and_levels():
    a = generate_problems("linear", 20, seed=3, difficulties=[2])
    assert a == generate_problems("linear", 20, seed=3, difficulties=[2])
    assert a != generate_problems("linear", 20, seed=4, difficulties=[2])
    assert {r["difficulty"] for r in a} == {2}
    assert all(r["id"].startswith("linear-") for r in a)
    with pytest.raises(ValueError, match=r"unknown difficulty \[9\]; levels: \[1, 2, 3, 4\]"):
        generate_problems("linear", 1, difficulties=[9])
    with pytest.raises(KeyError, match="unknown problem generator 'geometry'; known: arithmetic"):
        generate_problems("geometry", 1)


def test_recomputation_parser():
    assert linear_form("(-3 + 5) * 4 - (-2)") == (0, 10)
    assert linear_form("-3*(x + 3)") == (-3, -9)
    assert solve_statement("2*x + 1 = x + 4") == 3
    with pytest.raises(ValueError, match="not linear"):
        linear_form("x * x")
    with pytest.raises(ValueError, match="not linear"):
        linear_form("__import__('os')")


def test_a_new_domain_is_one_class():
    """The plugin contract: a domain registers a generator; generate_problems draws from it."""

    class Doubling(ProblemGenerator):
        name = "doubling-test"
        levels = (1,)

        def make(self, rng, difficulty):
            n = rng.randint(1, 10**6)
            return Problem(
                f"What is twice {n}?", str(2 * n), f"2 * {n} = {2 * n}\n#### {2 * n}", 1, "doubling"
            )

    GENERATORS.register("doubling-test")(Doubling)
    try:
        rows = generate_problems("doubling-test", 5, seed=0)
        assert [int(r["final_answer"]) % 2 for r in rows] == [0] * 5
    finally:
        GENERATORS._items.pop("doubling-test")


def test_sft_rows_carry_the_worked_solution(verifier):
    rows = generate_problems("linear", 8, seed=1)
    for p in rows:
        s = sft_row(p)
        assert set(s) == {"id", "instruction", "input", "output"} and s["id"] == p["id"]
        assert s["instruction"] == p["question"] and "\n" in s["output"]  # steps, then ####
        assert verifier.verify(p, s["output"]).reward == 1
