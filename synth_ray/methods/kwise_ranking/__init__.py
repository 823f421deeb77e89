"""Starling-style k-wise ranking data (survey: "Synthetic data for preference-tuning";
Zhu et al. 2023, Starling-7B and its Nectar dataset).

"This dataset consists of 183[k] chat prompts that each has seven responses distilled from
models such as gpt-4, gpt-3.5-instruct, gpt-3.5-turbo, mistral-7b-instruct, and llama2-7b. This
results in 3.8M pairwise comparisons. The preference data is then used to finetune a reward
model ... via the k-wise maximum likelihood estimator under the Plackett-Luce Model" (survey).

For each prompt, K responses (``k``, 7 by default as Nectar) come from ``responders``, run one
after the other: each a model on an engine (``vllm`` or an OpenAI-compatible endpoint) asked
``samples`` times, named in the rows. Responders with the same engine and model share one
engine. A judge then ranks them:

- ``judge.type: llm`` (Nectar: GPT-4): the job's model on the job's engine reads the responses
  labelled A, B, ... in a seeded random order (a new shuffle per judgement, recorded), and writes
  "Ranking: C > A > ..." under structured outputs (a regex listing every permutation up to
  ``exact_permutation_max_k`` responses, labels from the set above it; or a JSON schema); the
  order is mapped back to the original responses. ``judgements`` > 1 averages ranks over
  differently shuffled judgements (mean rank). A judgement that is no permutation is a reject
  (``ranking_<reason>``), and the parse rate is in run.json (``counts.judge``).
- ``judge.type: reward_service``: every response scored by the scoring service's reward model
  (``POST /v1/reward``, ``synth_ray.serve``), ranked by score (equal scores share a mean rank).

Outputs: ``OUTPUT_DIR/rankings/`` (``prompt``, ``responses`` best first, ``models``,
``mean_ranks``, the judgements in ``extra``), which ``method: reward`` with ``loss: kwise`` (the
Plackett-Luce trainer) reads as it is, and ``OUTPUT_DIR/preferences/``, the pairwise rows
derived from each ranking (``pairs: all`` by default, K(K-1)/2 per prompt: Starling's 183k x 21
= 3.8M; ties and identical texts skipped), for ``method: reward`` / ``dpo`` and
``synth-ray export --format preferences`` (no export format for the k-wise rows yet).

Named choices the survey does not fix: prompts default to the shipped Self-Instruct seed
instructions (Nectar: 183k prompts from public chat datasets); response sampling temperature
0.7, top_p 0.9, 512 tokens; the judge's prompt is written for synth-ray (Nectar's GPT-4 prompt
is not reproduced), greedy, one line of reasoning before the ranking; ties in mean rank keep
responder order in ``responses`` and are listed in ``extra.ties``.

Data flow::

    prompts -> responders (data/respond/<name>/) -> K responses per prompt
      -> shuffled, labelled -> judge (data/judge/) -> parse -> map back -> mean rank
      -> rankings/ (k-wise) + preferences/ (pairs) ; rejects/ (with reasons)
"""

from synth_ray.methods.kwise_ranking.kwise_ranking import KwiseRanking, KwiseRankingConfig

__all__ = ["KwiseRanking", "KwiseRankingConfig"]
