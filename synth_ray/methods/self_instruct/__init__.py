"""Self-Instruct (survey: "Self-Improvement vs. Distillation", Self-Instruct; Wang et al. 2022).

A model bootstraps its own instruction data from 175 human-written seed tasks:

1. **New instructions**, round after round: each prompt shows 8 instructions (6 seed tasks and,
   once the pool has any, 2 machine-generated ones) in the "Come up with a series of tasks"
   prompt; the model continues the numbered list. Parsed tasks are filtered (3 < words <= 150,
   keyword blocklist: image, picture, graph, file, map, draw, plot, go to...; no "Write a
   program" prefix; no punctuation or non-ASCII first character) and kept only when their
   ROUGE-L with every instruction in the pool (seeds + kept) is at most 0.7, in order, on one
   pool (a Ray actor) whatever the number of engines. Rounds repeat until the target count.
2. **Classification?** A few-shot prompt (12 classification + 19 non-classification seed
   instructions) asks "Is it classification?" (greedy, 3 tokens).
3. **Instances**: input-first for other tasks, output-first (class label, then input) for
   classification tasks; identical input/output pairs and inputs repeated with different
   outputs are dropped.

Defaults are the paper's (reference code yizhongw/self-instruct): 8 shots (2 machine), sampling
per stage (``prompts.GENERATE_SAMPLING`` etc.), ROUGE-L 0.7, target 52k. Named deviations, all
options: ``requests_per_round`` (prompts sent in parallel per round; the reference sends 5 at a
time), ``drop_truncated: false``, ``structured_output.enabled`` (JSON records instead of free
text, for weak models; the prompts stay the paper's), ``patience``/``max_rounds`` (stop rules),
``prompt_format``: the paper sends its prompts as raw text to GPT-3 (a completion model), which
``raw`` reproduces; the default ``auto`` follows the model, sending the same prompt text as one
user turn through the model's chat template when it has one (the model-appropriate format for
instruction-tuned models, which tend to answer raw text with nothing or loops), raw text for a
base model (``synth_ray.stages.prompt``; the choice is in run.json).

Data flow::

    seed tasks -> rounds[ prompts -> engine (data/generate/r*/) -> parse -> filters -> novelty ]
      -> classify (data/classify/) -> instances (data/instances/) -> filter instances
      -> instructions/ (one row per kept instruction) + dataset/ (instruction, input, output,
         lineage) ; rejects/ (every dropped candidate, with its reason)
"""

from synth_ray.methods.self_instruct.self_instruct import (
    SelfInstruct,
    SelfInstructConfig,
)

__all__ = ["SelfInstruct", "SelfInstructConfig"]
