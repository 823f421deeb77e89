"""Self-Instruct's pure parts: seed data, prompts, parsers and filters on recorded completions
(``tests/fixtures/completions/si_*.txt``, read byte for byte)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from synth_ray.filters.instructions import instruction_reject_reason
from synth_ray.methods.self_instruct import prompts as P
from synth_ray.methods.self_instruct.parse import (
    filter_instances,
    parse_instances,
    parse_instances_json,
    parse_is_classification,
    parse_tasks,
    parse_tasks_json,
)

from ..conftest import REPO, SHARED_DATA, SURVEY, needs_survey

FIXTURES = REPO / "tests" / "fixtures" / "completions"
PKG = REPO / "synth_ray" / "methods" / "self_instruct"


def fx(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


# --- seed data --------------------------------------------------------------------------------


def test_seed_tasks_is_a_byte_exact_copy_of_the_shared_file():
    shared = SHARED_DATA / "self_instruct_seed_tasks.jsonl"
    if not shared.exists():
        pytest.skip(f"the upstream copy {shared} is absent (not shipped with the repository)")
    assert (PKG / "seed_tasks.jsonl").read_bytes() == shared.read_bytes()


def test_load_seed_tasks_default():
    tasks = P.load_seed_tasks()
    assert len(tasks) == 175
    assert sum(t["is_classification"] for t in tasks) == 26  # the file's own flags
    assert tasks[0]["id"] == "seed_task_0"
    assert tasks[1]["instruction"] == "What is the relation between the given pairs?"
    assert tasks[1]["instances"] == [
        {
            "input": "Night : Day :: Right : Left",
            "output": "The relation between the given pairs is that they are opposites.",
        }
    ]
    assert tasks[151]["name"] == "toxic_sentence_detection" and tasks[151]["is_classification"]


def test_load_seed_tasks_names_the_bad_line(tmp_path: Path):
    good = json.dumps(
        {
            "id": "a",
            "name": "a",
            "instruction": "Do it.",
            "is_classification": False,
            "instances": [{"input": "", "output": "ok"}],
        }
    )
    path = tmp_path / "seeds.jsonl"
    path.write_text(good + "\n\n" + good + "\n" + '{"id": "b", "name": "b"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 4: invalid JSON"):
        P.load_seed_tasks(str(path))
    empty = {"id": "c", "name": "c", "instruction": "x", "instances": [], "is_classification": True}
    path.write_text(good + "\n" + json.dumps(empty))
    with pytest.raises(ValueError, match=r"line 2: no instances"):
        P.load_seed_tasks(str(path))
    path.write_text(json.dumps({"id": "d", "instruction": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"line 1: missing field 'name'"):
        P.load_seed_tasks(str(path))
    path.write_text(good + "\n" + good.replace('"a"', '"b"') + "\n")
    assert [t["id"] for t in P.load_seed_tasks(str(path))] == ["a", "b"]
    path.write_text(good + "\n" + good + "\n")  # two seeds under one id: defined as an error
    with pytest.raises(ValueError, match=r"line 2: duplicate id 'a' \(first at line 1\)"):
        P.load_seed_tasks(str(path))


def test_license_file_names_source_and_license():
    text = (PKG / "SEED_TASKS_LICENSE.md").read_text(encoding="utf-8")
    assert "Apache License 2.0" in text
    assert "yizhongw/self-instruct" in text and "data/seed_tasks.jsonl" in text
    assert "175" in text and "unmodified" in text


# --- prompts ----------------------------------------------------------------------------------


def test_generation_prompt_survey_format():
    instructions = [f"Instruction number {i}." for i in range(1, 9)]
    instructions[2] = "  Split   over\nlines:  "
    prompt = P.generation_prompt(instructions)
    lines = prompt.split("\n")
    assert lines[0] == "Come up with a series of tasks:"
    assert lines[1] == "Task 1: Instruction number 1."
    assert lines[3] == "Task 3: Split over lines"  # whitespace collapsed, trailing ':' stripped
    assert lines[8] == "Task 8: Instruction number 8."
    assert lines[9] == "Task 9:" and prompt.endswith("Task 9:")
    assert len(lines) == 10


@needs_survey
def test_generation_prompt_matches_the_survey_figure_shape():
    # the survey's figure, with "{instruction for existing task i}" replaced
    text = SURVEY.read_text(encoding="utf-8")
    start = text.index("Come up with a series of tasks:")
    figure = text[start : text.index("Task 9:", start) + len("Task 9:")]
    expected = re.sub(r"\{instruction for existing task (\d)\}", r"T\1", figure)
    assert P.generation_prompt([f"T{i}" for i in range(1, 9)]) == expected


def test_generation_prompt_classification_header_and_errors():
    prompt = P.generation_prompt(["Tell if the sentence is sarcastic."], classification=True)
    assert prompt == (
        "Come up with a series of classification tasks. Try to specify the possible output "
        "labels when possible.\nTask 1: Tell if the sentence is sarcastic.\nTask 2:"
    )
    with pytest.raises(ValueError):
        P.generation_prompt([])


def _clf_examples(prompt: str) -> list[tuple[str, str]]:
    return re.findall(r"Task: (.*)\nIs it classification\? (Yes|No)\n", prompt)


def test_classification_prompt_12_yes_19_no_survey_first():
    prompt = P.classification_prompt("Tell me   whether the review\nis positive.")
    assert prompt.startswith(
        "Can the following task be regarded as a classification task with finite output labels?\n\n"
    )
    assert prompt.endswith(
        "\n\nTask: Tell me whether the review is positive.\nIs it classification?"
    )
    examples = _clf_examples(prompt)
    assert len(examples) == 31
    assert sum(a == "Yes" for _, a in examples) == 12
    assert sum(a == "No" for _, a in examples) == 19
    assert examples[:5] == [
        ("Given my personality and the job, tell me if I would be suitable.", "Yes"),
        ("Give me an example of a time when you had to use your sense of humor.", "No"),
        ("Replace the placeholders in the given text with appropriate named entities.", "No"),
        (
            (
                "Fact checking - tell me if the statement is true, false, or unknown, based on your "
                "knowledge and common sense."
            ),
            "Yes",
        ),
        ("Return the SSN number for the person.", "No"),
    ]


def test_classification_examples_are_the_named_seed_tasks():
    by_id = {t["id"]: t for t in P.load_seed_tasks()}
    examples = _clf_examples(P.classification_prompt("x"))
    assert len(P.CLASSIFICATION_EXAMPLE_IDS) == len(examples) == 31
    mismatched = []
    for (text, answer), (seed_id, label) in zip(examples, P.CLASSIFICATION_EXAMPLE_IDS):
        seed = by_id[seed_id]
        assert (answer == "Yes") is label is seed["is_classification"]
        if text != seed["instruction"]:
            mismatched.append(seed_id)
    assert mismatched == ["seed_task_67"]  # the paper's prompt rewords this one


def test_instance_prompt_input_first():
    prompt = P.instance_prompt("  Convert the sentence to the passive voice. ", False)
    assert prompt.startswith(
        "Come up with examples for the following tasks. Try to generate multiple examples when "
        "possible. If the task doesn't require additional input, you can generate the output "
        "directly.\n\nTask: Which exercises are best for reducing belly fat at home?\nOutput:\n"
        "- Lying Leg Raises\n- Leg In And Out\n- Plank\n- Side Plank\n- Sit-ups\n\n"
        "Task: Extract all the country names in the paragraph, list them separated by commas.\n"
        "Example 1\nParagraph: Dr. No is the sixth novel"
    )
    assert (
        "\nOutput: English, British, Jamaica, the United Kingdom, German, Chinese, Britain, "
        "the United States.\n\nTask: Converting 85 F to Celsius.\nOutput: 85°F = 29.44°C\n\n"
        in prompt
    )
    # demonstrations rendered from seed tasks 132 (with input) and 139 (no input, multi-line)
    assert (
        "\n\nTask: Sort the given list ascendingly.\nExample 1\nList: [10, 2, 5, -4, 92, 101]\n"
        "Output: [-4, 2, 5, 10, 92, 101]\n\n" in prompt
    )
    assert (
        "\n\nTask: Write a program to compute the sum of integers from k to n.\nOutput:\n"
        "def sum(k, n):\n" in prompt
    )
    assert prompt.endswith("return sum\n\nTask: Convert the sentence to the passive voice.\n")
    assert prompt.count("\nTask: ") == 3 + len(P.INPUT_FIRST_SEED_IDS) + 1
    assert "{" + "seed_demonstrations}" not in prompt and "{instruction}" not in prompt


def test_instance_prompt_output_first():
    prompt = P.instance_prompt("Tell me if the email is spam or not.", True)
    assert prompt.startswith(
        "Given the classification task definition and the class labels, generate an input that "
        "corresponds to each of the class labels. If the task doesn't require input, just "
        "generate the correct class label.\n\nTask: Classify the sentiment of the sentence into "
        "positive, negative, or mixed.\nClass label: Mixed\nSentence: I enjoy the flavor of the "
        "restaurant but their service is too slow.\nClass label: Positive\n"
    )
    assert (
        "- Agent: Sorry that we will cancel your order. You will get a refund within 7 days.\n"
        "- Customer: oh that takes too long. I want you to take quicker action on this.\n\n"
        in prompt
    )
    assert (
        "\n\nTask: Tell me if the sentence is factually correct. Yes or no?\nClass label: No\n"
        "Mount Rainier is the second highest mountain in North America.\n\n" in prompt
    )
    assert prompt.endswith("\n\nTask: Tell me if the email is spam or not.\n")
    assert prompt.count("Class label:") == 5 + len(P.OUTPUT_FIRST_SEED_IDS)
    # an instruction with braces is inserted literally
    assert P.instance_prompt("Fill in {blank}.", True).endswith("Task: Fill in {blank}.\n")


def _survey_figure(start: str) -> str:
    text = SURVEY.read_text(encoding="utf-8")
    i = text.index(start)
    return text[i : text.index("\n...\n", i)]


def _loose(text: str) -> str:
    """Whitespace runs -> one space, typographic apostrophes -> ASCII (the survey's rendering
    hard-wraps lines and curls apostrophes; the prompts are written as the reference writes)."""
    return re.sub(r"\s+", " ", text.replace("\u2019", "'")).strip()


@needs_survey
@pytest.mark.parametrize(
    "start, prompt",
    [
        ("Can the following task be regarded", lambda: P.classification_prompt("x")),
        ("Come up with examples for the following", lambda: P.instance_prompt("x", False)),
        ("Given the classification task definition", lambda: P.instance_prompt("x", True)),
    ],
)
def test_prompts_start_with_the_survey_figures_verbatim(start, prompt):
    figure = _survey_figure(start)
    assert len(figure) > 300
    assert _loose(prompt()).startswith(_loose(figure))


def test_templates_are_named_and_hashed():
    for name in P.TEMPLATE_NAMES:
        t = P.template(name)
        assert t.name == f"self_instruct/{name}" and len(t.hash) == 12
        assert not t.text.endswith("\n")


# --- sampling constants -----------------------------------------------------------------------


def test_sampling_constants_are_the_references():
    assert P.NUM_PROMPT_INSTRUCTIONS == 8 and P.NUM_MACHINE_IN_PROMPT == 2
    assert P.REQUEST_BATCH == 5 and P.ROUGE_THRESHOLD == 0.7
    g = P.GENERATE_SAMPLING
    assert (g["temperature"], g["top_p"], g["max_tokens"], g["presence_penalty"]) == (
        0.7,
        0.5,
        1024,
        2.0,
    )
    assert g["stop"] == ["\n\n", "Task 16", "\n16"]
    c = P.CLASSIFY_SAMPLING
    assert (c["temperature"], c["max_tokens"], c["stop"]) == (0.0, 3, ["\n", "Task"])
    i = P.INSTANCE_SAMPLING
    assert (i["temperature"], i["max_tokens"], i["presence_penalty"]) == (0.0, 350, 1.5)
    assert i["stop"] == ["Example 6", "Task:"]
    assert P.CLF_INSTANCE_SAMPLING["max_tokens"] == 300
    assert P.instance_sampling(True)["max_tokens"] == 300
    assert P.instance_sampling(False)["max_tokens"] == 350
    P.instance_sampling(False)["stop"].append("x")  # a copy: the constant is untouched
    assert P.INSTANCE_SAMPLING["stop"] == ["Example 6", "Task:"]


def test_sampling_constants_validate_as_sampling_config():
    from synth_ray.engines.base import SamplingConfig

    for d in (
        P.GENERATE_SAMPLING,
        P.CLASSIFY_SAMPLING,
        P.INSTANCE_SAMPLING,
        P.CLF_INSTANCE_SAMPLING,
    ):
        assert SamplingConfig(**d).stop == d["stop"]


# --- parse_tasks ------------------------------------------------------------------------------

OK_TASKS = [
    "Given a list of ingredients, suggest a recipe that uses all of them.",
    "Write a limerick about a cat who loves to sleep.",
    "Convert the following sentence from passive voice to active voice.",
    "What are the pros and cons of working from home?",
    "Classify the following animals into mammals, birds, and reptiles.",
    "Explain the difference between weather and climate to a 10-year-old.",
    "Find the grammatical errors in the sentence and correct them.",
]


def test_parse_tasks_ok():
    assert parse_tasks(fx("si_tasks_ok.txt")) == OK_TASKS
    assert parse_tasks(fx("si_tasks_ok.txt"), strict_numbering=True) == OK_TASKS


def test_parse_tasks_reference_numbering():
    assert parse_tasks(fx("si_tasks_numbered.txt")) == [
        "Given a company name, write a short slogan for it.",
        "Describe the steps to change a flat tire.",
        "Summarize the main idea of the paragraph in one sentence.",
        "Tell me if the number is prime or not:",
    ]


def test_parse_tasks_truncated():
    text = fx("si_tasks_truncated.txt")
    assert parse_tasks(text, finish_reason="length") == []  # reference: whole response dropped
    assert parse_tasks(text, finish_reason="length", drop_truncated=False) == [
        (
            "Generate a list of questions to ask during a job interview for a software engineer "
            "position."
        ),
        "Rewrite the given paragraph so that it is easier for a child to understand.",
    ]
    # not known to be truncated: the cut item is kept (the job filters it later, if at all)
    assert len(parse_tasks(text)) == 3


def test_parse_tasks_chatter_preamble_and_trailer():
    assert parse_tasks(fx("si_tasks_chatter.txt")) == [
        "Write a thank-you note to a colleague who helped you finish a project.",
        "Identify the main character in the story and describe their personality.",
        "Tell me whether the following statement is a fact or an opinion.",
    ]
    # a blank line ends the list, so a truncated response keeps its last item before it
    assert (
        len(parse_tasks(fx("si_tasks_chatter.txt"), finish_reason="length", drop_truncated=False))
        == 3
    )


def test_parse_tasks_wrong_numbering():
    text = fx("si_tasks_wrong_numbering.txt")
    assert parse_tasks(text) == [
        "Suggest three names for a new coffee shop.",
        "Rewrite the paragraph in the style of a pirate.",
        "Give an example of a simile and explain its meaning.",
        "Create a detailed budget for the given hypothetical trip.",
    ]
    assert parse_tasks(text, strict_numbering=True) == [
        "Suggest three names for a new coffee shop.",
        "Rewrite the paragraph in the style of a pirate.",
        "Give an example of a simile and explain its meaning.",
    ]


def test_parse_tasks_does_not_filter_and_reasons_come_from_the_filter():
    tasks = parse_tasks(fx("si_tasks_filtered.txt"))
    assert len(tasks) == 7
    assert [instruction_reject_reason(t) for t in tasks] == [
        "blocked_keyword:map",
        "banned_prefix",
        "too_short",
        "starts_with_punctuation",
        "blocked_keyword:picture",
        "starts_with_non_ascii",
        None,
    ]


def test_parse_tasks_empty_and_other_first_number():
    assert parse_tasks("") == []
    assert parse_tasks("   \n") == []
    assert parse_tasks(" Name a famous painter.\nTask 4: Define entropy.", first_number=3) == [
        "Name a famous painter.",
        "Define entropy.",
    ]


def test_parse_tasks_json():
    assert parse_tasks_json(fx("si_tasks_json_ok.txt")) == [
        "Write a short poem about the ocean.",
        "Explain how a bill becomes a law in the United States.",
        "Classify the sentence as a question or a statement.",
    ]
    assert parse_tasks_json(fx("si_tasks_json_bad.txt")) == []
    assert parse_tasks_json('```json\n{"tasks": ["Name the planets."]}\n```') == [
        "Name the planets."
    ]
    assert parse_tasks_json('["not", "an", "object"]') == []
    assert parse_tasks_json('{"tasks": "a string"}') == []
    assert parse_tasks_json("") == []


# --- parse_is_classification ------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, expected",
    [
        (" Yes", True),
        ("yes", True),
        (" YES.", True),
        (" yes, it is", True),
        (" No", False),
        ("no", False),
        (" NO\n", False),
        (" Not sure", None),
        (" Maybe", None),
        ("", None),
        ("  ", None),
    ],
)
def test_parse_is_classification(completion, expected):
    assert parse_is_classification(completion) is expected


# --- parse_instances --------------------------------------------------------------------------


def test_parse_instances_input_first_ok():
    assert parse_instances(fx("si_instances_gen_ok.txt"), False) == [
        ("Sentence: The cake was eaten by the children.", "The children ate the cake."),
        (
            "Sentence: The letter was written by my grandmother in 1952.",
            "My grandmother wrote the letter in 1952.",
        ),
        ("Sentence: The window was broken during the storm.", "The storm broke the window."),
    ]


def test_parse_instances_no_input():
    assert parse_instances(fx("si_instances_gen_no_input.txt"), False) == [
        (
            "",
            (
                "Pros:\n- No commute, which saves time and money\n- A flexible schedule\nCons:\n"
                "- It can feel isolating\n- It is harder to separate work from personal life"
            ),
        ),
    ]
    assert parse_instances("Input: The weather is nice.\nOutput: Il fait beau.", False) == [
        ("The weather is nice.", "Il fait beau.")
    ]


def test_parse_instances_missing_output_block_is_skipped():
    pairs = parse_instances(fx("si_instances_gen_missing_output.txt"), False)
    assert [p[1] for p in pairs] == [
        "1889 + 41 = 1930. So it stopped being the tallest man-made structure in 1930.",
        "3 * 2.50 + 1.20 = 7.50 + 1.20 = 8.70. She spent $8.70 in total.",
    ]
    assert pairs[1][0] == (
        "Paragraph: Maria bought 3 notebooks for $2.50 each and a pen for $1.20.\n"
        "Question: How much did she spend in total?"
    )


def test_parse_instances_truncated_drops_last():
    text = fx("si_instances_gen_truncated.txt")
    assert parse_instances(text, False, finish_reason="length") == [
        (
            "Topic: Climate change",
            (
                "Climate change refers to long-term shifts in temperatures and weather patterns, "
                "mainly caused by human activities such as burning fossil fuels."
            ),
        ),
    ]
    assert len(parse_instances(text, False)) == 2


def test_parse_instances_stops_at_next_task():
    text = fx("si_instances_gen_next_task.txt")
    expected = [("Word: happy", "joyful, cheerful, content"), ("Word: fast", "quick, rapid, swift")]
    assert parse_instances(text, False) == expected
    # the "Task:" cut ends the list, so nothing is dropped for length
    assert parse_instances(text, False, finish_reason="length") == expected


def test_parse_instances_input_labels_removed():
    assert parse_instances(fx("si_instances_gen_input_labels.txt"), False) == [
        ("12, 7, 3", "22"),
        ("5, 5", "10"),
    ]


def test_parse_instances_output_first():
    assert parse_instances(fx("si_instances_clf_ok.txt"), True) == [
        (
            (
                "Email: Congratulations! You have been selected to receive a free iPhone. Click the "
                "link below to claim your prize now."
            ),
            "Spam",
        ),
        (
            (
                "Email: Hi Sarah, just a reminder that our team meeting has been moved to 3 pm on "
                "Thursday. See you there!"
            ),
            "Not spam",
        ),
    ]
    assert parse_instances(fx("si_instances_clf_no_input.txt"), True) == [("", "Green")]
    truncated = fx("si_instances_clf_truncated.txt")
    assert parse_instances(truncated, True, finish_reason="length") == [
        (
            (
                "Review: The hotel staff were friendly and the room was spotless. I would definitely "
                "stay here again."
            ),
            "Positive",
        ),
    ]
    assert len(parse_instances(truncated, True)) == 2
    assert parse_instances(fx("si_instances_clf_no_label.txt"), True) == []
    assert parse_instances("Class label:\nReview: empty label", True) == []


def test_parse_instances_empty_and_garbage():
    assert parse_instances("", False) == []
    assert parse_instances("", True) == []
    assert parse_instances("I am not sure what you mean.", False) == []


def test_parse_instances_json():
    assert parse_instances_json(fx("si_instances_json_ok.txt"), False) == [
        ("Sentence: I has a dog.", "I have a dog."),
        ("Sentence: She go to school every day.", "She goes to school every day."),
    ]
    assert parse_instances_json(fx("si_instances_clf_json_ok.txt"), True) == [
        ("Review: Great phone, the battery lasts two days.", "Positive"),
        ("Review: The screen cracked within a week.", "Negative"),
    ]
    # the classification schema read as a generation one has no "output"
    assert parse_instances_json(fx("si_instances_clf_json_ok.txt"), False) == []
    assert parse_instances_json('{"instances": [{"input": "a", "out', False) == []
    assert parse_instances_json('{"instances": {"input": "a"}}', False) == []


# --- filter_instances -------------------------------------------------------------------------


def test_filter_instances_on_recorded_duplicates():
    pairs = parse_instances(fx("si_instances_gen_dupes.txt"), False)
    assert len(pairs) == 5
    kept, rejected = filter_instances(pairs)
    assert kept == [("Number: 16", "4"), ("Number: 25", "5")]
    assert rejected == [
        (("Number: 16", "4"), "duplicate"),
        (("Number: 9", "3"), "same_input_different_output"),
        (("Number: 9", "-3"), "same_input_different_output"),
    ]


def test_filter_instances_reasons():
    pairs = [
        ("", "Paris"),
        ("Word: cat", ""),
        ("hello", "hello"),
        ("Sentence: I like", "Corrected:"),
        ("Question:", "What?"),
        ("", "Lyon"),  # empty inputs never conflict
        ("Word: dog", "perro"),
    ]
    kept, rejected = filter_instances(pairs)
    assert kept == [("", "Paris"), ("", "Lyon"), ("Word: dog", "perro")]
    assert [r for _, r in rejected] == [
        "empty_output",
        "input_equals_output",
        "ends_with_colon",
        "ends_with_colon",
    ]
    kept, rejected = filter_instances(pairs, drop_colon_endings=False)
    assert ("Question:", "What?") in kept and len(rejected) == 2


def test_filter_instances_reference_drops_whole_task_on_conflict():
    pairs = [("a", "1"), ("b", "2"), ("b", "3")]
    kept, rejected = filter_instances(pairs, drop_task_on_conflict=True)
    assert kept == []
    assert [r for _, r in rejected] == ["same_input_different_output"] * 3
    kept, _ = filter_instances(pairs)
    assert kept == [("a", "1")]
