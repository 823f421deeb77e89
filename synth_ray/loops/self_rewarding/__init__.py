"""Self-Rewarding Language Models (survey, "Synthetic data for preference-tuning": "Self-Rewarding
Language Models"; Yuan et al. 2024) as a loop on ``synth_ray.loops``.

    IFT (instruction -> response) + EFT (evaluation prompt -> justification, "Score: N")
        ──SFT of the base model M0──> M1
    iteration t = 0..T-1 (M_t = M1, M2, ...):
        instructions  M_t writes new prompts from 8-shot prompts of IFT instructions
        responses     4 candidates per prompt (temperature 0.7, top_p 0.9)
        judge         M_t scores every candidate with the additive 5-point LLM-as-a-Judge
                      prompt, 3 judgements averaged
        select        pair = (highest, lowest) scored; ties and prompts with fewer than 2
                      parsed scores skipped, each a reject with its reason; preference rows
        train         DPO of M_t on the pairs, reference M_t -> M_{t+1}
        swap          the engines serve M_{t+1}, verified by the swap probe
        evaluate      M_{t+1} against M_t on held-out IFT instructions: win rate and mean score
                      under one judge

Paper defaults: 2 DPO iterations (M2, M3); 8 shots; 4 candidates at T=0.7, p=0.9; the survey's
additive 5-point judge prompt (rubric ``additive5``), each response scored thrice and averaged;
pairs highest vs lowest, ties discarded; DPO with beta 0.1 and M_t as both start and reference;
learning rates 5.5e-6 (SFT) and 1e-6 (DPO). ``feedback: positive`` is the paper's
positive-examples-only variant: SFT of M_t on the candidates scored 5.

Deviations, each an option: the seed data (``ift``/``eft``; default: the shipped Self-Instruct
seed instances and EFT built from them by rule, see SEEDS.md; the paper used OpenAssistant); the
number of new prompts (``prompts``), their sampling (``instruction_sampling``) and the prompt
asking for them (our wording, ``templates/instructions.txt``) are ours; the judge's sampling is
ours and its output is constrained to end in a parseable score where the engine supports it
(``synth_ray.stages.judge``); the held-out figure (``evaluation``) replaces the paper's
AlpacaEval: held-out IFT instructions answered greedily by M_t and M_{t+1}, both judged by one
judge (by default the served model, M_{t+1}; ``evaluation.judge.url`` for a judge fixed across
iterations).

Per iteration, the manifest (``iter_<t>/manifest.json``), ``run.json`` (``counts.iterations``)
and ``synth-ray lineage`` show the judge's parse rate, the score histogram, the number of pairs,
the skipped prompts by reason, DPO's reward margin and accuracy, and the held-out win rate.
``iter_<t>/preferences/`` holds the preference rows (``synth_ray.stages.records``), readable by
``synth-ray export --format preferences`` and by ``method: dpo``.
"""

from synth_ray.loops.self_rewarding.self_rewarding import (  # noqa: F401  (registers the job)
    SelfRewarding,
    SelfRewardingConfig,
)
