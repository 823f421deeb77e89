"""SPIN, Self-Play fIne-tuNing (survey, "Synthetic data for preference-tuning": "Self-Play
fIne-tuNing"; Chen et al. 2024) as a loop on ``synth_ray.loops``.

    M_0 = the SFT model (``model``; the paper: zephyr-7b-sft-full, SFT on UltraChat)
    iteration t = 0..T-1:
        generate   M_t answers every prompt of the SFT dataset once (the opponent's y')
        pairs      chosen = the dataset's response y, rejected = M_t's y'; preference rows
        train      the SPIN objective: the logistic loss of
                   lambda * log p(y|x)/p_t(y|x) - lambda * log p(y'|x)/p_t(y'|x),
                   i.e. DPO of M_t with M_t as the reference and beta = lambda -> M_{t+1}
        swap       the engines serve M_{t+1}, verified by the swap probe
        evaluate   held-out prompts answered greedily by M_t and M_{t+1}: ROUGE-L of each
                   answer against the dataset's response (how close to the data each model is)

Defaults, from the paper and its reference implementation: 3 iterations; lambda (``dpo.beta``)
0.1; learning rate 5e-7 with linear decay and a 0.1 warm-up, 3 epochs, 1,024 tokens per row;
M_t's answers sampled at temperature 1.0, top_p 1.0, up to 256 new tokens; from the second
iteration on, the previous iteration's pairs mixed into the training data
(``mix_previous``; the reference configurations train iteration t on the data of t and t-1).

Deviations, each an option: the SFT data (``data``; default: the shipped Self-Instruct seed
instances, Apache-2.0; the paper sampled 50k UltraChat-200k conversations) and its size
(``max_prompts``); prompts are sent in the model's chat format (``prompt_format``; the
reference sent "### Instruction: ... ### Response: "); the optimizer is the trainers' AdamW (the
reference: RMSprop); a pair whose generation failed, is empty, or equals the dataset's response
is a reject with its reason (the paper keeps every pair); the held-out figure (``heldout``) is
ours (the paper evaluated on the Open LLM Leaderboard and MT-Bench).

Per iteration, the manifest, ``run.json`` (``counts.iterations``) and ``synth-ray lineage`` show
the pairs (this iteration's and those trained on), the rejects by reason, DPO's reward margin and
accuracy (the SPIN discriminator's), and the held-out ROUGE-L of M_t and M_{t+1}.
``iter_<t>/preferences/`` holds the pairs (``synth_ray.stages.records``), readable by
``synth-ray export --format preferences`` and ``method: dpo``.
"""

from synth_ray.loops.spin import spin as _spin  # noqa: F401
