"""The code verifier on HumanEval and MBPP: canonical solutions pass, wrong ones fail, each with
its reason. Real sandbox processes, no Ray."""

from __future__ import annotations

import gzip
import json

import pytest

from synth_ray.stages.verify import build_verifier
from synth_ray.stages.verify.code_verifier import (
    CodeVerifier,
    CodeVerifierConfig,
    build_program,
    code_from_output,
)

from ...conftest import SHARED_DATA
from .sandbox_util import limits_config, require_isolation

N_HUMANEVAL = 20


@pytest.fixture(scope="module")
def humaneval() -> list[dict]:
    path = SHARED_DATA / "humaneval.jsonl.gz"
    if not path.exists():
        pytest.skip(f"{path} absent")
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f][:N_HUMANEVAL]


@pytest.fixture(scope="module")
def verifier() -> CodeVerifier:
    require_isolation()
    return CodeVerifier(CodeVerifierConfig(sandbox=limits_config(wall_s=5.0, cpu_s=3), threads=2))


def test_humaneval_canonical_solutions_pass(verifier, humaneval):
    verdicts = verifier.verify_many([(p, p["canonical_solution"]) for p in humaneval])
    assert [v.reason for v in verdicts] == ["tests_passed"] * len(humaneval)
    assert all(v.reward == 1 for v in verdicts)


def test_humaneval_wrong_solutions_fail(verifier, humaneval):
    wrong = [
        "    return None\n",  # wrong value
        "    raise NotImplementedError\n",  # error
        "    return (\n",  # syntax error
        "    import os\n    os._exit(0)\n",  # exits with 0 before the tests
        "    while True:\n        pass\n",  # never returns
    ]
    problems = humaneval[: len(wrong)]
    verdicts = verifier.verify_many(list(zip(problems, wrong)))
    assert all(v.reward == 0 for v in verdicts)
    codes = [v.code for v in verdicts]
    assert codes[0] in ("test_failed", "error")
    assert codes[1:4] == ["error", "syntax_error", "exited_early"], verdicts
    # The CPU limit (3 s) ends the loop; on a loaded machine the 5 s wall clock may come first.
    assert codes[4] in ("cpu_time_limit", "wall_time_limit"), verdicts
    assert "NotImplementedError" in verdicts[1].reason


def test_humaneval_whole_function_in_a_fence(verifier, humaneval):
    """A chat model writes the whole function in a Markdown fence: the prompt's imports are put
    before it (HumanEval's signatures use typing)."""
    p = humaneval[0]  # has_close_elements(numbers: List[float], ...)
    body = p["prompt"].split("from typing import List\n", 1)[1] + p["canonical_solution"]
    output = f"Here is my solution:\n\n```python\n{body}```\n\nIt loops over pairs."
    assert verifier.verify(p, output).reason == "tests_passed"
    program, fmt = build_program(p, output)
    assert fmt == "humaneval" and program.startswith("from typing import List")


def test_code_from_output():
    assert code_from_output("```python\ndef f():\n    return 1\n```") == "def f():\n    return 1\n"
    two = "```\nprint(1)\n```\ntext\n```py\ndef g(): pass\n```"
    assert code_from_output(two) == "def g(): pass\n"  # the fence that defines a function
    assert code_from_output("def h(): pass") == "def h(): pass"


MBPP = {
    "task_id": 2,
    "text": "Write a function to find the shared elements from the given two lists.",
    "test_setup_code": "SHIFT = 0",
    "test_list": [
        "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
        "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
    ],
}


def test_mbpp_format(verifier):
    good = "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n"
    assert verifier.verify(MBPP, good).reason == "tests_passed"
    half = "def similar_elements(a, b):\n    return (4, 5)\n"  # passes the first assert only
    v = verifier.verify(MBPP, half)
    assert (v.reward, v.code) == (0, "test_failed")
    v = verifier.verify(MBPP, "def similar_elements(a, b):\n    return SHIFT\n")  # setup code runs
    assert v.code == "error" and "TypeError" in v.reason


def test_bad_problem_and_registry(verifier):
    v = verifier.verify({"question": "no tests"}, "def f(): pass")
    assert (v.reward, v.code) == (0, "bad_problem")
    assert isinstance(build_verifier("code", CodeVerifierConfig()), CodeVerifier)
