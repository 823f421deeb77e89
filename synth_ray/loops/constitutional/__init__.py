"""Constitutional AI, supervised stage (SL-CAI) (survey, "Synthetic data for preference-tuning":
"Constitutional AI: Harmlessness from AI Feedback"; Bai et al. 2022) as a loop on
``synth_ray.loops``.

    M_0 = the model (``model``; the paper: a helpful RLHF model writes responses, critiques
          and revisions)
    iteration t = 0..T-1 (the paper: one pass):
        respond     M_t answers every red-team prompt once, and (``helpful_source: model``)
                    each helpfulness instruction ``helpful_samples`` times (paper: two)
        revise_r    r = 1..``revisions`` (paper: four): a principle sampled from the
                    constitution (uniform, seeded per prompt and round); M_t critiques the
                    current response under its critique request, then revises it under the
                    paired revision request; few-shot examples of critique and revision come
                    first as earlier turns (as in the paper). A failed or empty critique or
                    revision ends the prompt's chain at its last good response (a reject)
        sft_data    (prompt, final revision) rows (``train_on: all``: every revision), plus
                    helpful rows up to ``helpful_ratio`` of them (paper: 135k to 183k);
                    preference rows chosen = final revision, rejected = initial response
        train       SFT of the base model (``train_from``; paper: the pretrained model), one
                    epoch -> M_{t+1}
        swap        the engines serve M_{t+1}, verified by the swap probe

Deviations, each an option: the shipped constitution (16 principles), red-team prompts (40) and
few-shot examples (2) are this project's own wording (``data/``, see ``data/DATA.md``; the
paper's prompt files carry no license); the helpful instructions default to the shipped
Self-Instruct seed instances (Apache-2.0); sampling temperatures (1.0) and lengths are ours, the
survey gives none; every round critiques the latest revision in a fresh conversation (prompt,
latest response, critique request), where the paper may continue one conversation; prompts go
through the model's chat template as turns.

``iter_<t>/chain/r<r>/`` holds each prompt's response after round r with its principle and
critique; ``iter_<t>/sft/`` the training rows; ``iter_<t>/preferences/`` the (revision, initial)
pairs, readable by ``synth-ray export --format preferences``.
"""

from synth_ray.loops.constitutional import rl_cai as _rl_cai  # noqa: F401
from synth_ray.loops.constitutional import sl_cai as _sl_cai  # noqa: F401
