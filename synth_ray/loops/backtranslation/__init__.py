"""Instruction Backtranslation (survey, "Synthetic data for instruction-tuning": "Self-Alignment
with Instruction Backtranslation"; Li et al. 2023) as a loop on ``synth_ray.loops``.

    seed pairs ──SFT──> M0 (forward: instruction -> output)
    seed pairs ──SFT──> Myx (backward: output -> instruction)
    web documents ──segments (clean, dedup, length)──> Myx writes an instruction for each
        (self-augmentation)                              = augmented pairs A
    iteration t = 0..T-1:
        M_t scores every pair of A with the 5-point prompt (self-curation) -> A_k^(t+1)
        M_{t+1} = SFT of the base model on the seed pairs + A_k^(t+1), tagged
        the engines move to M_{t+1}, verified by the swap probe

Paper defaults: 2 iterations (M1, M2); the curation prompt is the survey's (rubric
``curation5``); A_5 (score 5) trains the next model (``select_k: 4`` gives A_4); seed and
augmented examples carry the paper's tags ("Answer in the style of an AI Assistant." and
"Answer with knowledge from web search.") as a system message; each M_{t+1} is finetuned from
the base model, as the paper finetunes LLaMa at every iteration.

Deviations, each an option: seed pairs are the instances of the shipped Self-Instruct seed tasks
(the paper used 3,200 OpenAssistant first turns; ``seeds:`` takes any JSONL/Parquet of
instruction/input/output or messages rows); segments come from the C4 sample (Clueweb in the
paper) with our length bounds (``min_chars``, ``max_chars``); the instruction sampling
(``augment_sampling``) and the judge's sampling are ours, the survey gives none; the judge's
output is constrained to end in a parseable score where the engine supports it (see
``synth_ray.stages.judge``); ``train_from: previous`` finetunes M_t instead of the base.
"""

from synth_ray.loops.backtranslation.backtranslation import (  # noqa: F401  (registers the job)
    Backtranslation,
    BacktranslationConfig,
)
