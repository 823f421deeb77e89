"""Unnatural Instructions (survey: "Self-Improvement vs. Distillation"; Honovich et al. 2022).

Distillation from a stronger model with almost no human labour:

1. **Examples**: 15 seed examples (instruction, input, constraints) form 5 fixed 3-shot prompts
   ("Example 1 ... Example 4"); the teacher writes a fourth example with nucleus sampling
   (top_p 0.99). Examples missing a field, copying a prompt example, or duplicating an earlier
   one are dropped. Rounds repeat until the target (68k in the paper).
2. **Outputs**: greedy, conditioned on instruction, input and constraints.
3. **Template expansion**: the teacher reformulates each task twice; a formulation embeds the
   input through an ``{INPUT}`` placeholder and keeps the task's output.

``dataset/`` holds the core examples (instruction with its constraints, input, output) and the
reformulations (instruction with the input embedded, empty input, same output), each with its
lineage (round, the 3 seed ids of its prompt, the request). Defaults are the paper's where it
gives them (``prompts`` documents which values are ours). Named deviations, all options:
``requests_per_round``, ``structured_output.enabled`` (JSON for examples and reformulations),
``reformulate: false``, ``patience``/``max_rounds``, ``prompt_format`` (the paper sends raw
text to text-davinci-002's completion API: ``raw``; the default ``auto`` sends the same text as
one user turn through the model's chat template when it has one, raw text for a base model;
recorded in run.json, see ``synth_ray.stages.prompt``).

Data flow::

    seeds -> 5 prompts -> rounds[ engine (data/examples/r*/) -> parse -> filters ]
      -> outputs (data/outputs/) -> reformulations (data/reformulations/)
      -> dataset/ ; rejects/ (every dropped example or formulation, with its reason)
"""

from synth_ray.methods.unnatural.unnatural import Unnatural, UnnaturalConfig

__all__ = ["Unnatural", "UnnaturalConfig"]
