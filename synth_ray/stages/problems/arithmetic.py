"""Arithmetic expressions and linear equations with recomputed answers, by difficulty level.

The simple generators behind the plugin contract (``base.py``; survey, AlphaGeometry's pattern
of problems no model wrote, and ReST-EM's need of ground-truth answers). Each problem is built
from random numbers, its answer computed while building it, then recomputed from the rendered
statement alone: the text is parsed (Python's ``ast``, numbers and + - * / and ``x`` only) into
``coefficient * x + constant`` on each side with exact fractions, and the two answers must
agree, else the generator raises. Answers are integers or reduced fractions (``-3/4``).

- ``arithmetic`` levels: 1: a + b or a - b; 2: three terms with a product; 3: four terms with
  brackets; 4: brackets and a division (the answer may be a fraction).
- ``linear`` levels: 1: x + b = c; 2: a*x + b = c; 3: a*x + b = c*x + d; 4: a*(x + b) = c*x + d
  (the solution may be a fraction).
"""

from __future__ import annotations

import ast
import random
from fractions import Fraction

from synth_ray.stages.problems.base import GENERATORS, Problem, ProblemGenerator

Lin = tuple[Fraction, Fraction]  # coefficient of x, constant


def fmt(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def _lin(node: ast.AST) -> Lin:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return Fraction(0), Fraction(node.value)
    if isinstance(node, ast.Name) and node.id == "x":
        return Fraction(1), Fraction(0)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        a, b = _lin(node.operand)
        return -a, -b
    if isinstance(node, ast.BinOp):
        (a1, b1), (a2, b2) = _lin(node.left), _lin(node.right)
        if isinstance(node.op, ast.Add):
            return a1 + a2, b1 + b2
        if isinstance(node.op, ast.Sub):
            return a1 - a2, b1 - b2
        if isinstance(node.op, ast.Mult) and (a1 == 0 or a2 == 0):
            return a1 * b2 + a2 * b1, b1 * b2
        if isinstance(node.op, ast.Div) and a2 == 0 and b2 != 0:
            return a1 / b2, b1 / b2
    raise ValueError(f"not linear arithmetic: {ast.dump(node)[:80]}")


def linear_form(text: str) -> Lin:
    """``text`` (numbers, x, + - * /, brackets) as (coefficient of x, constant), exactly."""
    return _lin(ast.parse(text.strip().replace("×", "*").replace("÷", "/"), mode="eval").body)


def solve_statement(equation: str) -> Fraction:
    """The solution of a linear equation 'lhs = rhs' in x, from its text alone."""
    lhs, rhs = equation.split("=")
    (a, b), (c, d) = linear_form(lhs), linear_form(rhs)
    if a == c:
        raise ValueError(f"no unique solution: {equation}")
    return (d - b) / (a - c)


def _term(v: int) -> str:
    return f"({v})" if v < 0 else str(v)


@GENERATORS.register("arithmetic")
class Arithmetic(ProblemGenerator):
    name = "arithmetic"
    levels = (1, 2, 3, 4)

    def make(self, rng: random.Random, difficulty: int) -> Problem:
        r = rng.randint
        if difficulty == 1:
            a, b, op = r(1, 99), r(1, 99), rng.choice("+-")
            expr, value = f"{a} {op} {b}", Fraction(a + b if op == "+" else a - b)
            steps = [f"{expr} = {fmt(value)}"]
        elif difficulty == 2:
            a, b, c = r(2, 12), r(2, 12), r(1, 50)
            op = rng.choice("+-")
            prod = a * b
            value = Fraction(prod + c if op == "+" else prod - c)
            expr = f"{a} * {b} {op} {c}"
            steps = [f"{a} * {b} = {prod}", f"{prod} {op} {c} = {fmt(value)}"]
        elif difficulty == 3:
            a, b, c, d = r(-20, 20), r(1, 20), r(2, 9), r(-30, 30)
            s = a + b
            value = Fraction(s * c - d)
            expr = f"({_term(a)} + {b}) * {c} - {_term(d)}"
            steps = [
                f"{_term(a)} + {b} = {s}",
                f"{s} * {c} = {s * c}",
                f"{s * c} - {_term(d)} = {fmt(value)}",
            ]
        else:
            a, b, c, d = r(-30, 30), r(1, 30), r(2, 12), r(1, 9)
            s = Fraction(a + b, c)
            value = s + d
            expr = f"({_term(a)} + {b}) / {c} + {d}"
            steps = [
                f"{_term(a)} + {b} = {a + b}",
                f"{a + b} / {c} = {fmt(s)}",
                f"{fmt(s)} + {d} = {fmt(value)}",
            ]
        again = linear_form(expr)
        if again != (0, value):
            raise AssertionError(f"recomputed {again} != {value} for {expr}")
        question = f"Compute {expr}. Give the exact value."
        return Problem(
            question,
            fmt(value),
            "\n".join(steps) + f"\n#### {fmt(value)}",
            difficulty,
            "arithmetic",
        )


@GENERATORS.register("linear")
class LinearEquation(ProblemGenerator):
    name = "linear"
    levels = (1, 2, 3, 4)

    def make(self, rng: random.Random, difficulty: int) -> Problem:
        r = rng.randint
        x = Fraction(r(-20, 20))
        if difficulty == 1:
            b = r(-30, 30)
            c = x + b
            eq = f"x + {_term(b)} = {fmt(c)}"
            steps = [f"x = {fmt(c)} - {_term(b)}", f"x = {fmt(x)}"]
        elif difficulty == 2:
            a, b = rng.choice([i for i in range(-9, 10) if i not in (0, 1)]), r(-30, 30)
            c = a * x + b
            eq = f"{a}*x + {_term(b)} = {fmt(c)}"
            steps = [
                f"{a}*x = {fmt(c)} - {_term(b)} = {fmt(c - b)}",
                f"x = {fmt(c - b)} / {a} = {fmt(x)}",
            ]
        elif difficulty == 3:
            a = r(-9, 9)
            c = rng.choice([i for i in range(-9, 10) if i != a])
            b = r(-30, 30)
            d = (a - c) * x + b
            eq = f"{a}*x + {_term(b)} = {c}*x + {_term(int(d))}"
            steps = [
                f"({a} - {_term(c)})*x = {fmt(d)} - {_term(b)}",
                f"{a - c}*x = {fmt(d - b)}",
                f"x = {fmt(x)}",
            ]
        else:
            a = rng.choice([i for i in range(-9, 10) if i != 0])
            c = rng.choice([i for i in range(-9, 10) if i != a])
            b, d = r(-12, 12), r(-40, 40)
            x = Fraction(d - a * b, a - c)  # a*(x + b) = c*x + d
            eq = f"{a}*(x + {_term(b)}) = {c}*x + {_term(d)}"
            steps = [
                f"{a}*x + {_term(a * b)} = {c}*x + {_term(d)}",
                f"({a} - {_term(c)})*x = {_term(d)} - {_term(a * b)}",
                f"{a - c}*x = {d - a * b}",
                f"x = {fmt(x)}",
            ]
        again = solve_statement(eq)
        if again != x:
            raise AssertionError(f"recomputed {again} != {x} for {eq}")
        question = f"Solve for x: {eq}. Give the exact value of x."
        return Problem(
            question, fmt(x), "\n".join(steps) + f"\n#### {fmt(x)}", difficulty, "linear"
        )
