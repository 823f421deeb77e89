"""ReST-EM, self-training on verified samples (survey, "Synthetic data for instruction-tuning":
"Beyond Human Data - Scaling Self-Training for Problem-Solving with Language Models"; Singh et
al. 2023) as a loop on ``synth_ray.loops``.

    M_0 = the base model (``model``)
    iteration t = 0..T-1:
        generate   E-step: M_t samples N solutions per training problem (in iteration 0 also
                   ``eval_samples`` per held-out problem: M_0's pass@1 and pass@k)
        verify     the binary reward of every sample from the verify stage
                   (``synth_ray.stages.verify``: math = final answer against the ground truth,
                   code = the problem's tests in the sandbox, never in the worker's process)
        select     per problem at most K correct solutions kept; a problem with none is a
                   reject with its reason (no_correct_sample, generation_failed, ...)
        train      M-step: SFT of the *base model* on the kept solutions -> M_{t+1} (the paper
                   fine-tunes the base model at every iteration, not M_t, against overfitting)
        swap       the engines serve M_{t+1}, verified by the swap probe
        evaluate   M_{t+1} samples the held-out problems: pass@1 and pass@k (the unbiased
                   estimator of Chen et al. 2021)

Defaults, from the paper (section "Implementation details"): 3 iterations; N = 32 samples per
problem (``samples``; the paper: 32 for MATH, 64 for APPS), temperature 0.7; at most K = 10
correct solutions per problem (``max_per_problem``; the paper and the reference
implementations: 10); a binary reward from the verifier (``verifier: math|code``); the M-step
always from the base model.

Deviations, each an option: the problems (``problems``: any JSONL of GSM8K, MATH, HumanEval or
MBPP rows, or the generators' rows; default: ``generate``, 1,000 arithmetic problems of
``synth_ray.stages.problems``, where the paper used MATH and APPS) and their number
(``max_problems``); the held-out split (``heldout``, 100 problems of the same source; the paper
evaluated on the datasets' test splits) and its sampling (``eval_samples`` 16, ``pass_k`` 8,
``evaluation_sampling``); the paper's top-K 40 is not an engine setting here (plain temperature
sampling, ``sampling``); the M-step's settings (``sft``: the SFT trainer's defaults; the paper
tuned PaLM 2 through a cloud API and gives none); ``include_reference_solutions`` (default off)
adds each training problem's own worked solution as a sample, verified like the model's, so a
model that solves nothing still has data (the tiny test model's case); without it, an iteration
that keeps nothing trains nothing and M_{t+1} is the base model, said so in the manifest.

Per iteration, the manifest, ``run.json`` (``counts.iterations``) and ``synth-ray lineage``
show the samples, their correct rate and the verifier's reasons, the problems solved, the kept
rows, the train loss, and the held-out pass@1 and pass@k of M_t (before) and M_{t+1} (after).
``iter_<t>/verified/`` holds every sample with its reward and reason, ``iter_<t>/kept/`` the
SFT rows trained on (``instruction``, ``output``, ``problem_id``, ``sample_index``, ``source``),
``iter_<t>/rejects/`` the problems without a kept solution.
"""

from synth_ray.loops.rest_em import rest_em as _rest_em  # noqa: F401
