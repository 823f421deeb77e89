"""Alpaca's pure parts: the prompt, the batch parser and the instruction filter on recorded
completions (``tests/fixtures/completions/alpaca_*.txt``)."""

from __future__ import annotations

from synth_ray.methods.alpaca import prompts as A
from synth_ray.methods.alpaca.parse import (
    alpaca_reject_reason,
    parse_batch,
    parse_batch_json,
)

from ..conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "completions"

EXAMPLES = [
    {
        "instruction": "Give three tips for staying healthy.",
        "input": "",
        "output": "1. Eat well.\n2. Sleep.",
    },
    {
        "instruction": "Translate the sentence\ninto  French:",
        "input": "I love you.",
        "output": "Je t'aime.",
    },
    {"instruction": "Sort the list.", "input": "3, 1, 2", "output": "1, 2, 3"},
]


def fx(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_template_is_the_alpaca_prompt():
    text = A.template().text
    assert text.startswith(
        "You are asked to come up with a set of 20 diverse task instructions. These task "
        "instructions will be given to a GPT model and we will evaluate the GPT model for "
        "completing the instructions.\n\nHere are the requirements:\n1. Try not to repeat the verb "
        "for each instruction to maximize diversity.\n"
    )
    assert '"<noinput>" in the input field.\n' in text
    assert text.endswith("Make sure the output is less than 100 words.\n\nList of 20 tasks:\n")
    assert len(text) == 1750  # the reference file (1,749 characters) + the newline it appends


def test_encode_prompt_format():
    prompt = A.encode_prompt(EXAMPLES)
    body = prompt[len(A.template().text) :]
    assert body == (
        "###\n"
        "1. Instruction: Give three tips for staying healthy.\n1. Input:\n<noinput>\n"
        "1. Output:\n1. Eat well.\n2. Sleep.\n"
        "###\n"
        "2. Instruction: Translate the sentence into French\n2. Input:\nI love you.\n"
        "2. Output:\nJe t'aime.\n"
        "###\n"
        "3. Instruction: Sort the list.\n3. Input:\n3, 1, 2\n3. Output:\n1, 2, 3\n"
        "###\n"
        "4. Instruction:"
    )
    assert A.encode_prompt(EXAMPLES[:1]).endswith("###\n2. Instruction:")


def test_seed_examples_are_first_instances_of_the_seed_tasks():
    seeds = A.seed_examples()
    assert len(seeds) == 175
    assert seeds[1] == {
        "instruction": "What is the relation between the given pairs?",
        "input": "Night : Day :: Right : Left",
        "output": "The relation between the given pairs is that they are opposites.",
    }
    assert seeds[0]["input"] == ""
    assert "<noinput>" in A.encode_prompt(seeds[:3])


def test_constants_are_the_references():
    assert A.NUM_PROMPT_INSTRUCTIONS == 3 and A.NUM_TASKS == 20 and A.REQUEST_BATCH == 5
    assert A.ROUGE_THRESHOLD == 0.7
    s = A.SAMPLING
    assert (s["temperature"], s["top_p"], s["max_tokens"]) == (1.0, 1.0, 3072)
    assert s["stop"] == ["\n20", "20."]
    from synth_ray.engines.base import SamplingConfig

    assert SamplingConfig(**s).max_tokens == 3072


def test_parse_batch_full_response():
    out = parse_batch(fx("alpaca_batch_ok.txt"))
    assert len(out) == 16  # items 4..19
    assert out[0] == {
        "instruction": "Rewrite the following sentence in the passive voice.",
        "input": "The committee approved the new budget on Monday.",
        "output": "The new budget was approved by the committee on Monday.",
    }
    assert out[1] == {
        "instruction": "What is the capital of Australia?",
        "input": "",
        "output": "The capital of Australia is Canberra.",
    }
    assert (
        out[7]["output"]
        == "Silent flakes descend\nthe garden holds its breath now\nwhite on every branch"
    )
    assert out[15]["instruction"] == (
        "Rank the planets by their distance from the Sun, from closest to farthest."
    )
    assert [alpaca_reject_reason(x) for x in out] == [None] * 16


def test_parse_batch_truncated():
    text = fx("alpaca_batch_truncated.txt")
    out = parse_batch(text, finish_reason="length")
    assert [x["instruction"] for x in out] == [
        "Rewrite the following sentence in the passive voice.",
        "What is the capital of Australia?",
        "Classify the following animal as a mammal, bird, reptile, amphibian or fish.",
    ]
    # without the length signal the cut item parses (its 7 parts are there)
    assert len(parse_batch(text)) == 4
    assert parse_batch(text)[3]["output"].endswith("It is made up of more than 2,900")


def test_parse_batch_malformed_items_and_filter_reasons():
    out = parse_batch(fx("alpaca_batch_malformed.txt"))
    # item 6 has no output; "10." and "11." sit where 9 and 10 were expected: dropped
    assert [x["instruction"] for x in out] == [
        "Describe the water cycle in three sentences.",
        "Name three fruits.",
        "Create a diagram that shows the stages of mitosis.",
        "Write a program that checks whether a string is a palindrome.",
    ]
    assert out[1]["input"] == ""  # "<NoInput>" in any case
    assert out[3]["input"] == "racecar"
    assert out[3]["output"] == "def is_palindrome(s):\n    return s == s[::-1]"
    assert [alpaca_reject_reason(x) for x in out] == [
        None,
        "too_short",
        "blocked_keyword:diagram",
        "banned_prefix",
    ]


def test_parse_batch_other_prompt_sizes_and_garbage():
    text = (
        " Name the largest desert on Earth.\n2. Input:\n<noinput>\n"
        "2. Output:\nThe Antarctic Desert.\n###"
    )
    assert parse_batch(text, num_prompt_examples=1) == [
        {
            "instruction": "Name the largest desert on Earth.",
            "input": "",
            "output": "The Antarctic Desert.",
        }
    ]
    assert parse_batch(text) == []  # numbered 2, but 4 expected
    assert parse_batch("") == []
    assert parse_batch("I'm sorry, I can't help with that.") == []
    # 7 parts but the labels out of order (the reference would take the output as the input)
    swapped = " Tell me a joke about cats.\n4. Output:\nx\n4. Input:\ny"
    assert parse_batch(swapped) == []


def test_alpaca_reject_reason_uses_alpaca_blocklist():
    assert alpaca_reject_reason({"instruction": "Recommend some music for a rainy afternoon."}) == (
        "blocked_keyword:music"
    )
    assert alpaca_reject_reason({"instruction": "Describe the image in three sentences."}) == (
        "blocked_keyword:image"
    )
    assert alpaca_reject_reason({"instruction": "Suggest a name for a new bakery."}) is None
    assert alpaca_reject_reason({"instruction": ""}) == "empty"
    assert alpaca_reject_reason({}) == "empty"


def test_parse_batch_json():
    assert parse_batch_json(fx("alpaca_json_ok.txt")) == [
        {
            "instruction": "Suggest a name for a bakery that specializes in sourdough bread.",
            "input": "",
            "output": "Rise & Crust",
        },
        {
            "instruction": "Translate the sentence into Spanish.",
            "input": "Where is the train station?",
            "output": "¿Dónde está la estación de tren?",
        },
    ]
    assert parse_batch_json(fx("alpaca_json_bad.txt")) == []
    assert parse_batch_json('{"tasks": {}}') == []
    assert parse_batch_json("") == []
