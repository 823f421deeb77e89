"""Alpaca (survey: "Distillation techniques"; Taori et al. 2023, tatsu-lab/stanford_alpaca).

Self-Instruct's recipe as distillation from a stronger teacher, batched: each request shows 3
seed tasks (instruction, input, output; sampled from the 175 Self-Instruct seeds, never from
machine tasks) in Alpaca's prompt, which asks for 20 diverse tasks with input and output at
once; the teacher writes tasks 4 to 19. Parsed tasks are filtered (3 < words <= 150; Alpaca's
keyword blocklist; no "Write a program" prefix; no punctuation or non-ASCII start; empty output)
and kept only when their ROUGE-L with every instruction in the pool (seeds + kept) is at most
0.7, in order, on one pool (a Ray actor). Rounds repeat until the target (52k in Alpaca).

Defaults are the reference's (``prompts.SAMPLING``: temperature 1.0, top_p 1.0, 3072 tokens,
stop at "20"). Named deviations, all options: ``requests_per_round`` (parallel prompts per
round; the reference sends 5), ``structured_output.enabled`` (JSON records, for weak teachers),
``patience``/``max_rounds``, ``prompt_format`` (the paper sends its prompt as raw text to
text-davinci-003's completion API: ``raw``; the default ``auto`` sends the same text as one user
turn through the model's chat template when it has one, raw text for a base model; recorded in
run.json, see ``synth_ray.stages.prompt``). Point ``engine`` at an OpenAI-compatible teacher
(``engine.type: openai``) for distillation as the paper did, or at a local vLLM model.

Data flow::

    seed tasks -> rounds[ 3-shot prompts -> engine (data/alpaca/r*/) -> parse -> filters
      -> novelty ] -> dataset/ (instruction, input, output, lineage) ; rejects/ (with reasons)
"""

from synth_ray.methods.alpaca.alpaca import Alpaca, AlpacaConfig

__all__ = ["Alpaca", "AlpacaConfig"]
