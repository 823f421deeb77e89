"""Evol-Instruct / WizardLM (survey, "Distillation techniques": WizardLM; Xu et al. 2023).

An LLM rewrites instructions into harder ones (in-depth evolution: add constraints, deepen,
concretize, increase reasoning steps, complicate the input) or into new ones of the same domain
on rarer topics (in-breadth evolution), answers each evolved instruction, and drops the failed
evolutions. Starting from a dataset D(0) (the paper: Alpaca's 52k), each of M generations
(the paper: 4) evolves every instruction of D(t) once, with an operation drawn at random, into
D(t+1); the data of all generations is mixed for finetuning.

Elimination (paper, four cases; ``rules``): the evolved instruction adds no information to its
parent (the paper asks ChatGPT whether the two are equal: ``equality: llm``, the default); the
response contains "sorry" and is under 80 words; the response is only punctuation and stop
words; the instruction copies words of the evolving prompt ("#Rewritten Prompt#", "rewritten
prompt", ...). A failed evolution's parent goes back into the pool as it was, to be evolved
again by the next generation (a ``carried`` row); the failure is a reject with its reason.

Every evolved row carries its lineage: ``parent_id``, ``operation``, ``generation`` (and
``extra`` in ``dataset/``).

Prompts (``templates/``) are written anew for this project after the paper's structure: one
in-depth frame (rewrite into a harder prompt that people can still understand and answer, keep
non-text parts and the input, add only 10 to 20 words, do not use the markers) holding one of
five operation texts, an in-breadth prompt (a new prompt of the same domain, rarer, of similar
length and difficulty), the equality question (same constraints and requirements, same depth and
breadth; answer "Equal" or "Not Equal"), and the response prompt (the instruction alone).

Defaults are the paper's where it gives them: the six operations drawn uniformly, M = 4,
``equality: llm``, the 80-word "sorry" rule. Named deviations, all options:
- ``equality: rule``: a cheaper check than the LLM's, no request: fewer than ``min_new_words``
  content words new against the parent eliminates; ``off`` skips the check.
- ``strip_marker``: strip a leading "#Rewritten Prompt#:" label instead of eliminating.
- ``structured_output``: JSON {instruction} for evolutions and a regex answer for the
  equality check (weak models); the paper used free text.
- sampling (the paper gives none): evolution T 1.0 / 512 tokens, responses T 1.0 / 1024
  tokens, equality greedy / 8 tokens: ours.
- the input's instruction and input are evolved together as one prompt (instruction, newline,
  input); an evolved row's input is empty.
- ``dataset: all`` in the job mixes the evolved rows of every generation (the paper's mix);
  the seed rows D(0) themselves are not repeated in ``dataset/``.

Run it with the generic ``tasks`` job: ``jobs/evol_instruct.yaml``.
"""

from synth_ray.tasks.evol_instruct.evol_instruct import (
    OPERATIONS,
    EvolInstruct,
    EvolInstructConfig,
)

__all__ = ["OPERATIONS", "EvolInstruct", "EvolInstructConfig"]
