"""Unnatural Instructions' pure parts: seeds, combinations, prompts, parsers and filters on
recorded completions (``tests/fixtures/completions/un_*.txt``)."""

from __future__ import annotations

import json
import re

import pytest

from synth_ray.methods.unnatural import prompts as U
from synth_ray.methods.unnatural.parse import (
    dedup_key,
    expand_reformulation,
    is_shot_copy,
    parse_example,
    parse_example_json,
    parse_example_reason,
    parse_output,
    parse_reformulation,
    parse_reformulation_reason,
)

from ..conftest import REPO, SURVEY, needs_survey

FIXTURES = REPO / "tests" / "fixtures" / "completions"


def fx(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def seeds() -> list[dict]:
    return U.load_seeds()


# --- seeds and combinations -------------------------------------------------------------------


def test_seeds_file(seeds):
    assert len(seeds) == 15
    assert [s["id"] for s in seeds] == [f"unnatural_seed_{i}" for i in range(1, 16)]
    assert len({s["instruction"] for s in seeds}) == 15
    assert all(set(s) == {"id", "instruction", "input", "constraints"} for s in seeds)
    assert sum(s["constraints"] == "None." for s in seeds) == 7
    assert seeds[1] == {
        "id": "unnatural_seed_2",
        "instruction": "You are given a negative review and your task is to convert it to a "
        "positive review by one or more making minimal changes. Avoid changing the context of "
        "the review.",
        "input": "we stood there in shock, because we never expected this.",
        "constraints": "None.",
    }


def test_load_seeds_names_the_bad_line(tmp_path):
    path = tmp_path / "s.jsonl"
    ok = json.dumps({"id": "a", "instruction": "Do.", "input": "x", "constraints": "None."})
    path.write_text(ok + "\n" + json.dumps({"id": "b", "instruction": "Do.", "input": ""}) + "\n")
    with pytest.raises(ValueError, match=r"line 2: field 'input' missing or empty"):
        U.load_seeds(str(path))
    path.write_text(ok + "\n\n{oops\n")
    with pytest.raises(ValueError, match=r"line 3: invalid JSON"):
        U.load_seeds(str(path))


def _survey_figure() -> str:
    """The survey's generation prompt with its hard line wrapping undone."""
    text = SURVEY.read_text(encoding="utf-8")
    start = text.index("Example 1\nInstruction: You are given a science question")
    end = text.index("Example 4\n", start) + len("Example 4\n")
    out: list[str] = []
    for line in text[start:end].split("\n"):
        if out and line and not re.match(r"(Example \d|Instruction:|Input:|Constraints:)", line):
            out[-1] = out[-1].rstrip() + " " + line.strip()
        else:
            out.append(line.rstrip())
    return "\n".join(out)


@needs_survey
def test_first_combination_is_the_survey_prompt(seeds):
    combos = U.seed_combinations(seeds)
    assert U.example_prompt(combos[0]) == _survey_figure()


def test_five_distinct_disjoint_combinations(seeds):
    combos = U.seed_combinations(seeds)
    assert len(combos) == U.NUM_COMBINATIONS == 5
    assert all(len(c) == U.NUM_SHOTS == 3 for c in combos)
    ids = [tuple(s["id"] for s in c) for c in combos]
    assert len({frozenset(c) for c in ids}) == 5
    assert sorted(i for c in ids for i in c) == sorted(s["id"] for s in seeds)  # all 15 used
    assert ids[1] == ("unnatural_seed_4", "unnatural_seed_5", "unnatural_seed_6")
    # deterministic; another seed shuffles
    assert U.seed_combinations(seeds) == combos
    shuffled = U.seed_combinations(seeds, seed=7)
    assert shuffled == U.seed_combinations(seeds, seed=7)
    assert [tuple(s["id"] for s in c) for c in shuffled] != ids
    assert len({frozenset(s["id"] for s in c) for c in shuffled}) == 5


def test_combinations_beyond_a_partition(seeds):
    for seed in (0, 1):
        combos = U.seed_combinations(seeds[:5], k=3, n=6, seed=seed)
        keys = {frozenset(s["id"] for s in c) for c in combos}
        assert len(combos) == 6 and len(keys) == 6
    assert U.seed_combinations(seeds[:5], k=3, n=6)[0] == seeds[:3]  # the disjoint group first
    assert U.seed_combinations(seeds[:5], k=3, n=6, seed=1) != U.seed_combinations(
        seeds[:5], k=3, n=6
    )
    with pytest.raises(ValueError):
        U.seed_combinations(seeds[:4], k=3, n=5)  # only C(4, 3) = 4 exist
    with pytest.raises(ValueError):
        U.seed_combinations(seeds[:2], k=3, n=1)


# --- prompts ----------------------------------------------------------------------------------


def test_example_prompt_format(seeds):
    prompt = U.example_prompt(seeds[3:5])
    assert prompt == (
        f"Example 1\nInstruction: {seeds[3]['instruction']}\nInput: {seeds[3]['input']}\n"
        f"Constraints: {seeds[3]['constraints']}\n\n"
        f"Example 2\nInstruction: {seeds[4]['instruction']}\nInput: {seeds[4]['input']}\n"
        "Constraints: None.\n\nExample 3\n"
    )
    with pytest.raises(ValueError):
        U.example_prompt([])


def test_output_prompt(seeds):
    assert U.output_prompt(seeds[1]) == (
        f"Instruction: {seeds[1]['instruction']}\n"
        "Input: we stood there in shock, because we never expected this.\nOutput:"
    )
    assert U.output_prompt(seeds[1], include_none_constraints=True).endswith(
        "\nConstraints: None.\nOutput:"
    )
    assert U.output_prompt(seeds[8]) == (
        f"Instruction: {seeds[8]['instruction']}\nInput: {seeds[8]['input']}\n"
        "Constraints: The output should be a single number.\nOutput:"
    )


def test_reformulation_prompt(seeds):
    prompt = U.reformulation_prompt(seeds[11])
    assert prompt.startswith("Example 1\nInstruction: In this task, you are given a news article.")
    assert prompt.count("{INPUT}") == 3  # one per demonstration, kept literally
    assert prompt.endswith(
        "\n\nExample 4\nInstruction: Translate the given English sentence into French.\n"
        "Input: The museum is closed on Mondays, but it stays open late on Thursdays.\n"
        "Alternative formulation:"
    )
    assert len(re.findall(r"(?m)^Alternative formulation: .*\{INPUT\}", prompt)) == 3


def test_templates_named_and_hashed():
    for name in U.TEMPLATE_NAMES:
        t = U.template(name)
        assert t.name == f"unnatural/{name}" and len(t.hash) == 12


def test_sampling_constants():
    assert U.EXAMPLE_SAMPLING["top_p"] == 0.99 and U.EXAMPLE_SAMPLING["stop"] == ["Example 5"]
    assert U.OUTPUT_SAMPLING["temperature"] == 0.0
    assert U.NUM_REFORMULATIONS == 2 and U.REFORMULATION_SAMPLING["n"] == 2
    from synth_ray.engines.base import SamplingConfig

    for d in (U.EXAMPLE_SAMPLING, U.OUTPUT_SAMPLING, U.REFORMULATION_SAMPLING):
        assert SamplingConfig(**d).max_tokens == d["max_tokens"]


# --- parse_example ----------------------------------------------------------------------------


def test_parse_example_ok():
    assert parse_example_reason(fx("un_example_ok.txt")) == (
        {
            "instruction": "In this task, you are given a recipe and a list of ingredients. Your "
            "job is to determine whether all the ingredients in the list are used in the recipe. "
            'Answer with "Yes" or "No".',
            "input": "Recipe: Mix the flour, sugar and eggs, then bake for 30 minutes. "
            "Ingredients: flour, sugar, butter",
            "constraints": 'The output should be "Yes" or "No".',
        },
        None,
    )


def test_parse_example_multiline_input():
    ex = parse_example(fx("un_example_multiline.txt"))
    assert ex is not None
    assert (
        ex["input"] == "Anna: Could you pass me the salt?\nBen: Sure, here you go.\nAnna: Thanks!"
    )
    assert ex["constraints"] == "The output should be the name of one of the speakers."


def test_parse_example_missing_fields():
    assert parse_example_reason(fx("un_example_missing_constraints.txt")) == (
        None,
        "missing_constraints",
    )
    assert parse_example_reason(fx("un_example_missing_input.txt")) == (None, "missing_input")
    assert parse_example_reason("Input: 3 + 4\nConstraints: None.") == (None, "missing_instruction")
    assert parse_example_reason("") == (None, "missing_instruction")
    assert parse_example_reason("Instruction: Add.\nInput:\nConstraints: None.") == (
        None,
        "missing_input",
    )
    assert parse_example(fx("un_example_missing_input.txt")) is None


def test_parse_example_stops_at_the_next_example_and_chatter():
    assert parse_example(fx("un_example_runon.txt")) == {
        "instruction": "Given a sentence, replace every noun with its plural form.",
        "input": "The cat chased the mouse into the barn.",
        "constraints": "None.",
    }
    assert parse_example(fx("un_example_chatter.txt")) == {
        "instruction": "Classify the given word as a noun, a verb or an adjective.",
        "input": "quickly",
        "constraints": "The output should be one of the following: noun, verb, adjective.",
    }


def test_parse_example_json():
    assert parse_example_json(fx("un_example_json_ok.txt")) == {
        "instruction": "Given a city name, name the country it is in.",
        "input": "Kyoto",
        "constraints": "None.",
    }
    assert parse_example_json(fx("un_example_json_bad.txt")) is None
    assert parse_example_json('{"instruction": "x", "input": "y", "constr') is None
    assert parse_example_json('{"instruction": "x", "input": 5, "constraints": "None."}') is None


# --- filters ----------------------------------------------------------------------------------


def test_shot_copies_and_duplicates(seeds):
    shots = U.seed_combinations(seeds)[0]
    copy = parse_example(fx("un_example_copy.txt"))
    assert copy is not None and is_shot_copy(copy, shots)
    assert not is_shot_copy(copy, U.seed_combinations(seeds)[1])
    new = parse_example(fx("un_example_ok.txt"))
    assert not is_shot_copy(new, shots)
    respaced = {k: "  " + v.replace(" ", "\n ", 2) + " " for k, v in new.items()}
    assert dedup_key(respaced) == dedup_key(new)
    assert dedup_key(dict(new, constraints="None.")) != dedup_key(new)
    assert dedup_key({"instruction": "A  b", "input": "c"}) == ("A b", "c", "")


# --- outputs and reformulations ---------------------------------------------------------------


def test_parse_output():
    assert parse_output(fx("un_output_ok.txt")) == (
        "My brother and I went to the market yesterday to buy some apples."
    )
    assert parse_output(" \n") is None
    assert parse_output("") is None


def test_parse_reformulation(seeds):
    headline = seeds[3]
    ok = parse_reformulation(fx("un_reformulation_ok.txt"), headline)
    assert ok == (
        'Can you tell me which category this headline belongs to: "{INPUT}"? Choose from World, '
        "Sports, Business or Science/Tech."
    )
    assert expand_reformulation(ok, headline) == (
        'Can you tell me which category this headline belongs to: "Local startup raises $40 '
        'million to build grid batteries from sodium instead of lithium"? Choose from World, '
        "Sports, Business or Science/Tech."
    )
    assert parse_reformulation_reason(fx("un_reformulation_no_placeholder.txt"), headline) == (
        None,
        "missing_placeholder",
    )
    loose = parse_reformulation(
        fx("un_reformulation_no_placeholder.txt"), headline, require_placeholder=False
    )
    assert loose == (
        "Which category does the headline belong to? Choose from World, Sports, Business or "
        "Science/Tech."
    )


def test_parse_reformulation_identical_empty_and_runon(seeds):
    translate = seeds[11]
    same = " Translate the given English  sentence into French. {INPUT}\n"
    assert parse_reformulation_reason(same, translate) == (None, "identical")
    lower = " translate the given english sentence into french."
    assert parse_reformulation_reason(lower, translate) == (None, "identical")
    assert parse_reformulation_reason("", translate) == (None, "empty")
    assert parse_reformulation_reason("\n\nExample 5\nInstruction: x", translate) == (None, "empty")
    assert parse_reformulation(fx("un_reformulation_runon.txt"), translate) == (
        "{INPUT} Translate this sentence into French, please."
    )
