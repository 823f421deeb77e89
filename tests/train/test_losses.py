"""Reward losses (survey, "Distillation techniques": Starling's K-wise Plackett-Luce) and SPIN = DPO."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from synth_ray.train.losses import (
    bradley_terry_loss,
    masked_mse_loss,
    pairwise_accuracy,
    plackett_luce_loss,
    soft_bradley_terry_loss,
)


def _trl_source(relpath: str) -> str:
    spec = importlib.util.find_spec("trl")  # locates the package without importing it (slow)
    assert spec is not None and spec.origin is not None
    return (Path(spec.origin).parent / relpath).read_text(encoding="utf-8")


# --- Bradley-Terry -------------------------------------------------------------------------


def test_bradley_terry_matches_direct_formula():
    g = torch.Generator().manual_seed(0)
    c, r = torch.randn(16, generator=g), torch.randn(16, generator=g)
    m = torch.rand(16, generator=g)
    direct = torch.stack([torch.log1p(torch.exp(-(c[i] - r[i]))) for i in range(16)]).mean()
    direct_m = torch.stack(
        [torch.log1p(torch.exp(-(c[i] - r[i] - m[i]))) for i in range(16)]
    ).mean()
    assert torch.allclose(bradley_terry_loss(c, r), direct, atol=1e-6)
    assert torch.allclose(bradley_terry_loss(c, r, margin=m), direct_m, atol=1e-6)
    # A float margin and a concrete value: -log sigmoid(2 - 0.5) = log(1 + e^-1.5)
    one = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.0]), margin=0.5)
    assert one.item() == pytest.approx(math.log1p(math.exp(-1.5)), abs=1e-6)
    assert bradley_terry_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(math.log(2))


def test_bradley_terry_is_trls_reward_loss():
    """Guards the docstring claim against a TRL upgrade: TRL's RewardTrainer loss expression."""
    src = _trl_source("trainer/reward_trainer.py")
    expr_margin = (
        '-nn.functional.logsigmoid(rewards_chosen - rewards_rejected - inputs["margin"]).mean()'
    )
    assert expr_margin in src
    assert "-nn.functional.logsigmoid(rewards_chosen - rewards_rejected).mean()" in src
    assert "(rewards_chosen > rewards_rejected).float().mean()" in src  # its accuracy metric


def test_soft_bradley_terry_is_cross_entropy_against_the_label():
    g = torch.Generator().manual_seed(0)
    c, r, p = (
        torch.randn(16, generator=g),
        torch.randn(16, generator=g),
        torch.rand(16, generator=g),
    )
    direct = torch.stack(
        [
            -(
                p[i] * math.log(torch.sigmoid(c[i] - r[i]))
                + (1 - p[i]) * math.log(torch.sigmoid(r[i] - c[i]))
            )
            for i in range(16)
        ]
    ).mean()
    assert torch.allclose(soft_bradley_terry_loss(c, r, p), direct, atol=1e-5)
    # a hard label of 1 is the Bradley-Terry loss; of 0 the pair swapped
    assert torch.allclose(soft_bradley_terry_loss(c, r, torch.ones(16)), bradley_terry_loss(c, r))
    assert torch.allclose(soft_bradley_terry_loss(c, r, torch.zeros(16)), bradley_terry_loss(r, c))
    # the minimum over the score gap is where sigmoid(gap) = label
    d = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([d], lr=1.0)
    for _ in range(500):
        opt.zero_grad()
        soft_bradley_terry_loss(d, torch.zeros(1), torch.tensor([0.8])).backward()
        opt.step()
    assert torch.sigmoid(d).item() == pytest.approx(0.8, abs=1e-3)
    with pytest.raises(ValueError, match="must match"):
        soft_bradley_terry_loss(c, r, p[:3])


def test_bradley_terry_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(2))


# --- Plackett-Luce -------------------------------------------------------------------------


def test_plackett_luce_k2_equals_bradley_terry():
    g = torch.Generator().manual_seed(1)
    c, r = torch.randn(32, generator=g) * 3, torch.randn(32, generator=g) * 3
    pl = plackett_luce_loss(torch.stack([c, r], dim=1))
    assert torch.allclose(pl, bradley_terry_loss(c, r), atol=1e-6)


def test_plackett_luce_hand_computed_k3():
    # [2, 1, 0]: (-2 + log(e^2 + e + 1)) + (-1 + log(e + 1)) + 0
    best_first = -2 + math.log(math.e**2 + math.e + 1) + (-1 + math.log(math.e + 1))
    assert best_first == pytest.approx(0.7208676, abs=1e-6)
    # [0, 1, 2] (the ranking against the scores): log(e^2 + e + 1) + (-1 + log(e^2 + e))
    worst_first = math.log(math.e**2 + math.e + 1) + (-1 + math.log(math.e**2 + math.e))
    assert worst_first == pytest.approx(3.7208676, abs=1e-6)

    loss = plackett_luce_loss(torch.tensor([[2.0, 1.0, 0.0]]))
    assert loss.item() == pytest.approx(best_first, abs=1e-6)
    batch = plackett_luce_loss(torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]))
    assert batch.item() == pytest.approx((best_first + worst_first) / 2, abs=1e-6)


def test_plackett_luce_gradient_pushes_top_up():
    s = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
    plackett_luce_loss(s).backward()
    z3 = math.e**2 + math.e + 1
    z2 = math.e + 1
    expected = [-1 + math.e**2 / z3, -1 + math.e / z3 + math.e / z2, 1 / z3 + 1 / z2]
    assert s.grad is not None
    assert s.grad[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert s.grad[0, 0].item() == pytest.approx(-0.3347590, abs=1e-6)  # descent raises the best
    assert s.grad[0, 2].item() > 0  # and lowers the worst
    assert s.grad.sum().item() == pytest.approx(0.0, abs=1e-6)


def test_plackett_luce_masking():
    # Row 0 is a ranking of 2 padded to K=4; it must equal the unpadded Bradley-Terry pair.
    scores = torch.tensor([[3.0, 1.0, 99.0, -50.0], [2.0, 1.0, 0.0, -1.0]], requires_grad=True)
    lengths = torch.tensor([2, 4])
    loss = plackett_luce_loss(scores, lengths)
    row0 = plackett_luce_loss(torch.tensor([[3.0, 1.0]]))
    row1 = plackett_luce_loss(torch.tensor([[2.0, 1.0, 0.0, -1.0]]))
    assert row0.item() == pytest.approx(math.log1p(math.exp(-2.0)), abs=1e-6)
    assert loss.item() == pytest.approx((row0.item() + row1.item()) / 2, abs=1e-6)
    loss.backward()
    assert scores.grad is not None
    assert scores.grad[0, 2:].tolist() == [0.0, 0.0]  # padding gets no gradient
    assert torch.isfinite(scores.grad).all()
    # Length 1: nothing to compare, zero loss.
    single = plackett_luce_loss(torch.tensor([[5.0, 7.0]]), torch.tensor([1]))
    assert single.item() == 0.0


def test_plackett_luce_shift_invariant_and_stable():
    base = torch.tensor([[2.0, 1.0, 0.0], [0.5, -0.3, 1.2]])
    ref = plackett_luce_loss(base).item()
    assert plackett_luce_loss(base + 7.5).item() == pytest.approx(ref, abs=1e-5)
    assert plackett_luce_loss(base - 3.0).item() == pytest.approx(ref, abs=1e-5)
    huge = plackett_luce_loss(torch.tensor([[1000.0, 999.0, 998.0]]))
    assert huge.item() == pytest.approx(0.7208676, abs=1e-4)  # no overflow


def test_plackett_luce_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        plackett_luce_loss(torch.zeros(3))
    with pytest.raises(ValueError, match="lengths must be in 1..3"):
        plackett_luce_loss(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="lengths must be in 1..3"):
        plackett_luce_loss(torch.zeros(2, 3), torch.tensor([2, 4]))
    with pytest.raises(ValueError, match=r"lengths must be \(2,\)"):
        plackett_luce_loss(torch.zeros(2, 3), torch.tensor([2]))


# --- accuracy ------------------------------------------------------------------------------


def test_pairwise_accuracy():
    chosen = torch.tensor([1.0, 2.0, 3.0, 4.0])
    rejected = torch.tensor([0.0, 3.0, 3.0, 1.0])  # win, loss, tie (counts as wrong), win
    acc = pairwise_accuracy(chosen, rejected)
    assert isinstance(acc, float)
    assert acc == 0.5
    with pytest.raises(ValueError, match="empty"):
        pairwise_accuracy(torch.zeros(0), torch.zeros(0))


# --- SPIN is DPO ---------------------------------------------------------------------------


def test_spin_loss_equals_dpo_sigmoid_loss():
    """SPIN's logistic objective == DPO sigmoid loss with beta=lambda, ref = iteration-t model."""
    g = torch.Generator().manual_seed(2)
    n, lam = 64, 0.1
    # Sequence log-probs: theta (being trained) and theta_t (previous iteration) on the real
    # response y and on the model's own generation y'.
    logp_real, logp_gen = -20 * torch.rand(n, generator=g), -20 * torch.rand(n, generator=g)
    logp_t_real, logp_t_gen = -20 * torch.rand(n, generator=g), -20 * torch.rand(n, generator=g)

    u = lam * (logp_real - logp_t_real) - lam * (logp_gen - logp_t_gen)
    spin = torch.log1p(torch.exp(-u)).mean()  # l(u) = log(1 + exp(-u)), the paper's choice

    # DPO: chosen = real data, rejected = own generation, pi_ref = theta_t, beta = lambda
    chosen_logratios = logp_real - logp_t_real
    rejected_logratios = logp_gen - logp_t_gen
    dpo = -F.logsigmoid(lam * (chosen_logratios - rejected_logratios)).mean()

    assert torch.allclose(spin, dpo, atol=1e-6)
    assert spin.item() > 0
    # At the start of an iteration theta == theta_t: every margin is 0, the loss is log 2.
    at_start = -F.logsigmoid(lam * ((logp_real - logp_real) - (logp_gen - logp_gen))).mean()
    assert at_start.item() == pytest.approx(math.log(2))


def test_trl_dpo_sigmoid_branch_is_the_formula_used():
    """The TRL config named in the losses docstring computes exactly that sigmoid loss."""
    trainer_src = _trl_source("trainer/dpo_trainer.py")
    config_src = _trl_source("trainer/dpo_config.py")
    assert "per_sequence_loss = -F.logsigmoid(self.beta * delta_score)" in trainer_src
    assert "chosen_logratios = chosen_logps - ref_chosen_logps" in trainer_src
    assert 'default_factory=lambda: ["sigmoid"]' in config_src
    assert 'default="reverse_kl"' in config_src


def test_masked_mse_counts_only_rated_attributes():
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], requires_grad=True)
    target = torch.tensor([[2.0, float("nan"), 3.0], [1.0, 5.0, float("nan")]])
    mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    loss = masked_mse_loss(pred, target, mask)
    assert loss.item() == pytest.approx((1 + 0 + 1 + 25) / 4)
    loss.backward()
    assert pred.grad[0, 1] == 0 and pred.grad[1, 2] == 0  # no gradient where unrated
    assert torch.isfinite(pred.grad).all()
    assert masked_mse_loss(pred, target, torch.zeros(2, 3)).item() == 0.0
    with pytest.raises(ValueError, match="must match"):
        masked_mse_loss(pred, target[:1], mask)
