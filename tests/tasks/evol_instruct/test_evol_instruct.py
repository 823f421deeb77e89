"""Evol-Instruct's prompts and elimination rules (``synth_ray.tasks.evol_instruct``) on recorded
model text (good and malformed), without Ray or an engine."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from pydantic import ValidationError

from synth_ray.tasks.base import build_chain
from synth_ray.tasks.evol_instruct import OPERATIONS, rules
from synth_ray.tasks.evol_instruct.evol_instruct import EvolInstructConfig

SEED = {"id": "s1", "instruction": "Give three tips for staying healthy.", "input": ""}
WITH_INPUT = {
    "id": "s2",
    "instruction": "Translate the sentence into French.",
    "input": "The cat is sleeping.",
    "output": "Le chat dort.",
}


def _steps(**kw):
    return build_chain([{"name": "evol_instruct", "generations": 1, **kw}])


def test_defaults_are_the_papers():
    cfg = EvolInstructConfig()
    assert cfg.generations == 4 and cfg.equality == "llm" and cfg.sorry_max_words == 80
    assert list(cfg.operations) == list(OPERATIONS) and len(OPERATIONS) == 6
    with pytest.raises(ValidationError, match="n must be 1"):
        EvolInstructConfig(sampling={"n": 2})


def test_evolve_prompts_in_depth_and_in_breadth():
    evolve = _steps()[0]
    seen = Counter()
    for k in range(60):
        row = {**WITH_INPUT, "id": f"r{k}"}
        op = evolve.operation(row)
        assert op == evolve.operation(row)  # deterministic per row and generation
        seen[op] += 1
        p = evolve.prompt(row)
        assert "#Original Prompt#:\nTranslate the sentence into French.\nThe cat is sleeping." in p
        if op == "in_breadth":
            assert p.endswith("#New Prompt#:") and "same domain" in p
        else:
            assert p.endswith("#Rewritten Prompt#:") and "10 to 20 words" in p
            assert evolve.template(op).text in p
        assert "{" not in p  # every placeholder filled
    assert set(seen) == set(OPERATIONS)  # all six drawn
    only = _steps(operations=["deepen"])[0]
    assert "ask about it in more depth" in only.prompt(SEED)


def test_evolve_parse_keeps_lineage_and_eliminates_copies():
    evolve = _steps(equality="rule")[0]
    good = evolve.parse(SEED, "Give three tips for staying healthy on night shifts.\n", {})
    (child,) = good.rows
    assert child["instruction"] == "Give three tips for staying healthy on night shifts."
    assert child["parent_id"] == "s1" and child["generation"] == 1 and child["input"] == ""
    assert child["operation"] == evolve.operation(SEED) and child["parent"] == SEED
    for text, reason in [
        (
            "#Rewritten Prompt#: Give three tips for staying healthy at work.",
            "copies_evolving_prompt",
        ),
        ("Here is the rewritten prompt: give tips.", "copies_evolving_prompt"),
        ("   ", "empty_evolution"),
        ("Give three tips for staying healthy.", "no_information_gain"),
        ("Give the three healthy tips for staying.", "no_information_gain"),
    ]:
        p = evolve.parse(SEED, text, {})
        assert [r for r, _ in p.rejects] == [reason], text
        assert p.rows == [] and p.carried == [{**SEED, "carried": True}]
    # strip_marker (ours) takes the label off instead of eliminating
    strip = _steps(equality="off", strip_marker=True)[0]
    (kid,) = strip.parse(SEED, "#Rewritten Prompt#: Give tips for sailors.", {}).rows
    assert kid["instruction"] == "Give tips for sailors."
    # structured output: the instruction field of the JSON; malformed JSON -> empty evolution
    js = _steps(equality="off", structured_output=True)[0]
    assert js.schema()["required"] == ["instruction"]
    (j,) = js.parse(SEED, json.dumps({"instruction": "Give tips for divers."}), {}).rows
    assert j["instruction"] == "Give tips for divers."
    assert js.parse(SEED, '{"instruction": "Give', {}).rejects[0][0] == "empty_evolution"


def test_equality_check_prompt_and_answers():
    evolve, equal, respond = _steps()
    child = evolve.parse(SEED, "Give three tips for staying healthy in winter.", {}).rows[0]
    p = equal.prompt(child)
    assert p.index("Give three tips for staying healthy.") < p.index("in winter.")
    assert p.endswith('Reply with "Equal" or "Not Equal" only, without giving reasons.')
    assert equal.parse(child, "Not Equal", {}).rows == [child]
    assert equal.parse(child, ' "not equal."', {}).rows == [child]
    for text, reason in [("Equal", "no_information_gain"), ("Maybe", "unparsed_equality")]:
        p = equal.parse(child, text, {})
        assert p.rejects[0][0] == reason and p.carried == [{**SEED, "carried": True}]
    assert equal.skip({**SEED, "carried": True}) and respond.skip({**SEED, "carried": True})
    assert not evolve.skip({**SEED, "carried": True})  # carried rows are evolved again
    regex = _steps(structured_output=True)[1]
    assert json.loads(regex.sampling_json(child))["regex"] == "(Equal|Not Equal)"
    assert json.loads(equal.sampling_json(child))["temperature"] == 0.0


RECORDED = {  # responses as models write them
    "ok": "1. Sleep seven to nine hours.\n2. Eat vegetables.\n3. Walk daily.",
    "sorry_short": "I'm sorry, but I cannot help with that request.",
    "sorry_long": "Sorry for the wait! " + "Here is a long and careful answer. " * 20,
    "stopwords": "It is what it is, and so on...",
    "punctuation": " ... !? -- ",
    "empty": "",
}


def test_response_rules_on_recorded_text():
    assert rules.response_problem(RECORDED["ok"]) is None
    assert rules.response_problem(RECORDED["sorry_short"]) == "response_sorry"
    assert rules.response_problem(RECORDED["sorry_long"]) is None  # 80+ words: kept
    assert rules.response_problem(RECORDED["stopwords"]) == "response_only_stopwords"
    assert rules.response_problem(RECORDED["punctuation"]) == "response_only_stopwords"
    assert rules.response_problem(RECORDED["empty"]) == "empty_response"


def test_respond_keeps_the_answer_or_puts_the_parent_back():
    evolve, _, respond = _steps()
    child = evolve.parse(WITH_INPUT, "Translate the sentence into formal French.", {}).rows[0]
    assert respond.prompt(child) == "Translate the sentence into formal French."
    assert respond.prompt(WITH_INPUT) == "Translate the sentence into French.\nThe cat is sleeping."
    (done,) = respond.parse(child, RECORDED["ok"] + "\n", {}).rows
    assert done["output"] == RECORDED["ok"] and "parent" not in done
    assert done["parent_id"] == "s2" and done["generation"] == 1
    bad = respond.parse(child, RECORDED["sorry_short"], {})
    assert bad.rejects[0][0] == "response_sorry"
    assert bad.carried == [{**WITH_INPUT, "carried": True}]  # the parent, output and all


def test_copy_and_information_rules():
    assert rules.copies_evolving_prompt("Rewrite the #New Prompt# now") == "copies_evolving_prompt"
    assert rules.copies_evolving_prompt("Write a poem about the sea.") is None
    assert rules.adds_no_information("List the tips", "Give three tips") is None  # 'list'
    assert rules.adds_no_information("Give the tips", "Give three tips") == "no_information_gain"
    assert rules.adds_no_information("List tips now", "Give tips", min_new_words=3) is not None
