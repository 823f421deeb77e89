"""Reward-model losses that no library provides, beside the one TRL has (pure torch, no Ray).

Survey, "Distillation techniques" (Starling-7B): the reward model is trained on GPT-4 rankings
of K=7 responses per prompt "via the k-wise maximum likelihood estimator under the
Plackett-Luce model" (Zhu, Jordan, Jiao 2023, "Principled RLHF from pairwise or K-wise
comparisons"). ``plackett_luce_loss`` is that estimator; ``bradley_terry_loss`` is its K=2 case
and equals TRL's ``RewardTrainer`` loss. Survey, "Self-improvement (aka non-distillation)
techniques" (SPIN): SPIN needs no loss of its own, see "SPIN is DPO" below.

SPIN is DPO
-----------
SPIN's objective at iteration t (survey, SPIN section), with the logistic loss
``l(u) = log(1 + exp(-u)) = -log sigmoid(u)`` that the paper uses::

    L_SPIN(theta; theta_t) = E[ l( lam * log p_theta(y|x) / p_theta_t(y|x)
                                 - lam * log p_theta(y'|x) / p_theta_t(y'|x) ) ]
    with y ~ p_data(.|x) (the real/human response), y' ~ p_theta_t(.|x) (the model's own)

DPO's sigmoid loss with reference policy pi_ref::

    L_DPO(theta) = E[ -log sigmoid( beta * [ (log pi_theta(y_w|x) - log pi_ref(y_w|x))
                                           - (log pi_theta(y_l|x) - log pi_ref(y_l|x)) ] ) ]

Substituting ``y_w = y`` (real data as "chosen"), ``y_l = y'`` (the iteration-t model's
generation as "rejected"), ``pi_ref = p_theta_t`` and ``beta = lam`` gives
``-log sigmoid(lam * (...)) = l(lam * (...))``: the two are the same function of theta, term by
term (``tests/train/test_losses.py`` checks it numerically). So SPIN iteration t+1 is exactly
TRL's ``DPOTrainer(model=<theta_t checkpoint>, ref_model=<theta_t checkpoint>,
args=DPOConfig(loss_type="sigmoid", beta=lam))`` (TRL's defaults ``f_divergence_type=
"reverse_kl"``, ``label_smoothing=0.0`` and ``ld_alpha=None`` keep the plain sigmoid loss on
summed sequence log-probs). ``ref_model=None`` also works when the policy is loaded from the
theta_t checkpoint: TRL then loads a second copy of that checkpoint as the reference. The next
iteration regenerates y' with theta_{t+1} and uses theta_{t+1} as both start and reference.
No SPIN-specific loss is written here for that reason.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "bradley_terry_loss",
    "masked_mse_loss",
    "pairwise_accuracy",
    "plackett_luce_loss",
    "soft_bradley_terry_loss",
]


def bradley_terry_loss(
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    margin: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Pairwise Bradley-Terry negative log-likelihood, averaged over the batch.

    ``mean(-logsigmoid(chosen - rejected - margin))`` (no margin term when ``margin`` is None).
    This equals TRL's ``RewardTrainer.compute_loss`` (trl 1.16.0,
    ``trl/trainer/reward_trainer.py``): ``-nn.functional.logsigmoid(rewards_chosen -
    rewards_rejected - inputs["margin"]).mean()``, or without the margin term when the batch has
    no ``"margin"``; TRL adds ``center_rewards_coefficient * mean((chosen + rejected)**2)`` only
    when that option is set (it is None by default). It is ``plackett_luce_loss`` with K=2.

    Args:
        chosen_scores: (B,) scalar rewards of the preferred responses.
        rejected_scores: (B,) scalar rewards of the other responses.
        margin: optional (B,) tensor or float subtracted from the reward difference (Llama 2
            style: the more clearly preferred, the larger the required gap).
    """
    if chosen_scores.shape != rejected_scores.shape:
        raise ValueError(
            f"chosen_scores {tuple(chosen_scores.shape)} and rejected_scores "
            f"{tuple(rejected_scores.shape)} must have the same shape"
        )
    diff = chosen_scores - rejected_scores
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def soft_bradley_terry_loss(
    chosen_scores: torch.Tensor, rejected_scores: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Bradley-Terry cross-entropy against soft labels, averaged over the batch.

    ``mean(-(p * logsigmoid(d) + (1 - p) * logsigmoid(-d)))`` with ``d = chosen - rejected``
    and ``p = labels`` the probability that the chosen response is the better one: Constitutional
    AI's preference model, trained on the feedback model's normalised P((A)), P((B)) as targets
    (survey, "Constitutional AI"). With ``p = 1`` it is ``bradley_terry_loss``; its minimum over
    ``d`` is at ``sigmoid(d) = p``.
    """
    if not (chosen_scores.shape == rejected_scores.shape == labels.shape):
        raise ValueError(
            f"chosen_scores {tuple(chosen_scores.shape)}, rejected_scores "
            f"{tuple(rejected_scores.shape)} and labels {tuple(labels.shape)} must match"
        )
    d = chosen_scores - rejected_scores
    p = labels.to(d.dtype)
    return -(p * F.logsigmoid(d) + (1 - p) * F.logsigmoid(-d)).mean()


def masked_mse_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the rated entries only: SteerLM's attribute prediction model as a
    multi-output regression, where a response need not be rated on every attribute.

    ``sum(mask * (pred - target)^2) / sum(mask)`` over the (B, K) batch (0 when nothing is
    rated); unrated targets may hold anything (NaN included) and get neither loss nor gradient.
    """
    if not (pred.shape == target.shape == mask.shape):
        raise ValueError(
            f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)} must match"
        )
    m = mask.to(pred.dtype)
    diff = torch.where(mask.bool(), pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return (diff.pow(2) * m).sum() / m.sum().clamp_min(1.0)


def plackett_luce_loss(scores: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """K-wise Plackett-Luce negative log-likelihood of rankings, averaged over the batch.

    ``scores[b]`` holds the rewards of the responses to prompt b in ranked order, best first.
    Under Plackett-Luce the ranking is drawn by picking the best response with probability
    softmax over all, then the next with softmax over the rest, and so on, so::

        loss_b = sum_{k=0}^{n_b-1} [ -s_k + logsumexp(s_k, ..., s_{n_b-1}) ]
        loss   = mean_b loss_b

    with ``n_b = lengths[b]`` (K when ``lengths`` is None). This is the standard MLE of Zhu,
    Jordan, Jiao 2023 (their K-wise loss, used by Starling): summed over positions, with no
    per-position normalization (no division by n_b - 1), and a plain mean over prompts, so a
    prompt with more ranked responses weighs more, as it carries more comparisons. The last
    position contributes exactly 0. With K=2 it is ``bradley_terry_loss``. It is invariant to
    adding a constant to a row's scores. The suffix logsumexp is a reversed ``logcumsumexp``
    (stable for large scores).

    Args:
        scores: (B, K) float scores, best-ranked first.
        lengths: optional (B,) integer count of ranked responses per row, each in 1..K; the
            entries at positions >= lengths[b] are padding and get neither loss nor gradient.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, K), got shape {tuple(scores.shape)}")
    batch, k = scores.shape
    if lengths is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
        masked = scores
    else:
        lengths = torch.as_tensor(lengths, device=scores.device)
        if lengths.shape != (batch,):
            raise ValueError(f"lengths must be ({batch},), got shape {tuple(lengths.shape)}")
        if bool(((lengths < 1) | (lengths > k)).any()):
            raise ValueError(f"lengths must be in 1..{k}, got {lengths.tolist()}")
        valid = torch.arange(k, device=scores.device).unsqueeze(0) < lengths.unsqueeze(1)
        # A finite floor rather than -inf: exp() of it is 0, and no inf-inf NaN reaches backward.
        masked = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)
    suffix_lse = torch.logcumsumexp(masked.flip(-1), dim=-1).flip(-1)
    per_position = torch.where(valid, suffix_lse - masked, torch.zeros_like(masked))
    return per_position.sum(dim=-1).mean()


def pairwise_accuracy(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> float:
    """Fraction of pairs where the chosen score is strictly higher (ties count as wrong).

    Same rule as TRL's ``RewardTrainer`` "accuracy" metric: ``(chosen > rejected).float().mean()``.
    """
    if chosen_scores.shape != rejected_scores.shape:
        raise ValueError(
            f"chosen_scores {tuple(chosen_scores.shape)} and rejected_scores "
            f"{tuple(rejected_scores.shape)} must have the same shape"
        )
    if chosen_scores.numel() == 0:
        raise ValueError("pairwise_accuracy of an empty batch")
    return float((chosen_scores > rejected_scores).float().mean().item())
