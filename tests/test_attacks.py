"""Attack properties, parametrized over the ATTACKS registry, plus reference values and a Captum cross-check."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gradreg.attacks import ATTACKS, TARGETS, attack, fgsm, get_attack, iterated_tgsm, jsma, pgd, sized, target_classes
from gradreg.attacks.saliency_map import _best_pairs
from gradreg.core.models import build_model
from gradreg.core.modules import eval_mode
from gradreg.evaluation.accuracy import accuracy

METHODS = sorted(ATTACKS)
TARGETED = sorted(name for name, spec in ATTACKS.items() if spec.targeted)
FAST = {"pgd": {"steps": 5}, "bim": {"steps": 5}, "iterated_tgsm": {"steps": 3}, "square": {"queries": 30},
        "jsma": {"gamma": 0.02}, "apgd": {"steps": 5}, "apgd_t": {"steps": 5, "targets": 1},
        "ensemble": {"steps": 5, "targets": 1, "queries": 30}}  # small budgets keep each test well under a second


def run(model, x, y, method, eps, *, seed=0, **kw):
    return attack(model, x, y, method, **sized(method, eps), seed=seed, **(FAST.get(method, {}) | kw))


@pytest.fixture
def batch(synthetic):
    x, y = synthetic
    return x[:24], y[:24]


@pytest.fixture
def loose_model():
    """An untrained small CNN in training mode with trainable parameters: attacks must leave all of it alone."""
    torch.manual_seed(3)
    return build_model("small_cnn").train()


@pytest.mark.parametrize("method", METHODS)
def test_eps_zero_is_identity(tiny_model, batch, method):
    x, y = batch
    assert torch.equal(run(tiny_model, x, y, method, 0.0), x)


@pytest.mark.parametrize("method", METHODS)
def test_stays_in_ball_and_box(tiny_model, batch, method):
    x, y = batch
    spec, eps = ATTACKS[method], 0.1
    x_adv = run(tiny_model, x, y, method, eps)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    linf = (x_adv - x).abs().flatten(1).amax(1)
    if spec.bounded:
        assert spec.norm == "linf" and linf.max() <= eps + 1e-6
    else:  # unbounded (iterated TGSM): each step moves at most ε
        assert linf.max() <= FAST[method]["steps"] * eps + 1e-6


def test_eval_mode_restores_each_submodule(tiny_model):
    wrapper = torch.nn.Sequential(tiny_model)  # a wrapper in training mode around a shared eval-mode model
    with eval_mode(wrapper):
        assert not any(m.training for m in wrapper.modules())
    assert wrapper.training and not any(m.training for m in tiny_model.modules())


def test_attacks_without_a_radius_refuse_eps_and_name_their_size():
    assert {name: spec.size for name, spec in ATTACKS.items() if spec.size != "eps"} == {
        "iterated_tgsm": "step_size", "jsma": "theta"}
    assert all(spec.size == "eps" or spec.size in spec.params for spec in ATTACKS.values()), "the size is a knob"
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([1, 2])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    for method, size in (("iterated_tgsm", "step_size"), ("jsma", "theta")):
        with pytest.raises(ValueError, match=f"{method} takes {size}="):
            attack(model, x, y, method, eps=0.1)
    with pytest.raises(ValueError, match="takes step_size="):
        iterated_tgsm(model, x, y, eps=0.1)
    with pytest.raises(ValueError, match="takes theta="):
        jsma(model, x, y, eps=1.0)


def test_unbounded_attacks_say_so():
    assert [name for name, spec in ATTACKS.items() if not spec.bounded] == ["iterated_tgsm"]
    assert "UNBOUNDED" in ATTACKS["iterated_tgsm"].fn.__doc__


@pytest.mark.parametrize("method", ["pgd", "bim"])
def test_l2_ball(tiny_model, batch, method):
    x, y = batch
    x_adv = run(tiny_model, x, y, method, 1.5, norm="l2")
    assert (x_adv - x).flatten(1).norm(dim=1).max() <= 1.5 + 1e-5
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("method", METHODS)
def test_leaves_inputs_model_and_grads_alone(loose_model, batch, method):
    x, y = batch
    x = x.clone().requires_grad_(True)
    before_x, before_state = x.detach().clone(), {k: v.clone() for k, v in loose_model.state_dict().items()}
    x_adv = run(loose_model, x, y, method, 0.1)
    assert loose_model.training and x.grad is None and not x_adv.requires_grad
    assert all(p.grad is None for p in loose_model.parameters())
    assert torch.equal(x.detach(), before_x)
    # BatchNorm running statistics would move if the attack had run in training mode
    assert all(torch.equal(v, before_state[k]) for k, v in loose_model.state_dict().items())


@pytest.mark.parametrize("method", METHODS)
def test_accuracy_does_not_increase(tiny_model, synthetic, method):
    x, y = synthetic[0][:32], synthetic[1][:32]
    clean = accuracy(tiny_model, x, y)
    seeds = (0, 1) if method in ("pgd", "square") else (0,)  # retry random attacks once, as foolbox does
    after = min(accuracy(tiny_model, run(tiny_model, x, y, method, 0.2, seed=s), y) for s in seeds)
    assert after <= clean


@pytest.mark.parametrize("method", TARGETED)
def test_targeted_attacks_raise_target_hits(tiny_model, synthetic, method):
    x, y = synthetic[0][:16], synthetic[1][:16]
    t = target_classes(tiny_model, x, y, "next")
    eps, kw = (1.0, {"gamma": 0.05}) if method == "jsma" else (0.3, {})
    x_adv = run(tiny_model, x, y, method, eps, target=t, **kw)
    with torch.no_grad():
        assert (tiny_model(x_adv).argmax(1) == t).sum() > (tiny_model(x).argmax(1) == t).sum()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("eps", [-0.1, math.nan, math.inf, True, "0.1", None])
def test_invalid_eps(tiny_model, batch, method, eps):
    with pytest.raises(ValueError, match=ATTACKS[method].size):
        attack(tiny_model, *batch, method, **sized(method, eps))


def test_invalid_method_norm_and_params(tiny_model, batch):
    with pytest.raises(ValueError, match="valid: apgd, apgd_t, bim, ensemble, fgsm"):
        attack(tiny_model, *batch, "deepfool", eps=0.1)
    with pytest.raises(ValueError, match="valid: linf, l2"):
        attack(tiny_model, *batch, "pgd", eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="valid: steps"):
        attack(tiny_model, *batch, "pgd", eps=0.1, stepz=3)
    with pytest.raises(ValueError, match="steps"):
        attack(tiny_model, *batch, "pgd", eps=0.1, steps=0)
    with pytest.raises(ValueError, match="gamma"):
        attack(tiny_model, *batch, "jsma", theta=1.0, gamma=1.5)


@pytest.mark.parametrize("target", ["bogus", torch.zeros(3, dtype=torch.long), torch.full((24,), 10),
                                    torch.zeros(24)])
@pytest.mark.parametrize("method", TARGETED)
def test_invalid_target(tiny_model, batch, method, target):
    with pytest.raises(ValueError, match="target"):
        attack(tiny_model, *batch, method, **sized(method, 0.1), target=target)


def test_untargeted_attack_refuses_a_target(tiny_model, batch):
    with pytest.raises(ValueError, match="targeted attacks: iterated_tgsm, jsma, tgsm"):
        attack(tiny_model, *batch, "fgsm", eps=0.1, target="next")


def test_invalid_inputs(tiny_model, batch):
    x, y = batch
    for bad_x, bad_y in [(x[:, 0], y), (x * 2, y), (x, y[:3]), (x, y.float()), (x.long(), y)]:
        with pytest.raises(ValueError):
            fgsm(tiny_model, bad_x, bad_y, eps=0.1)


def test_targets(tiny_model, batch):
    x, y = batch
    assert torch.equal(target_classes(tiny_model, x, y, "next"), (y + 1) % 10)
    random = target_classes(tiny_model, x, y, "random", generator=torch.Generator().manual_seed(0))
    assert ((random != y) & (random >= 0) & (random < 10)).all()
    with torch.no_grad():
        assert torch.equal(target_classes(tiny_model, x, y, "least_likely"), tiny_model(x).argmin(1))
    assert set(TARGETS) == {"next", "random", "least_likely"}


def _closed_form_gradient(model, x, y):
    weight, bias = model[1].weight, model[1].bias
    z = x.flatten(1) @ weight.T + bias
    return ((F.softmax(z, 1) - F.one_hot(y, 10)) @ weight).view_as(x)  # Wᵀ(softmax(z) − onehot(y))


def test_fgsm_equals_closed_form_on_linear_model(linear_model, synthetic):
    x, y = synthetic
    with torch.no_grad():
        g = _closed_form_gradient(linear_model, x, y)
    for eps in (0.05, 0.3):
        expected = torch.clamp(x + eps * g.sign(), 0, 1)
        assert torch.allclose(fgsm(linear_model, x, y, eps=eps), expected, atol=1e-7, rtol=0)


def test_tgsm_equals_closed_form_on_linear_model(linear_model, synthetic):
    x, y = synthetic
    t = (y + 1) % 10
    with torch.no_grad():
        expected = torch.clamp(x - 0.1 * _closed_form_gradient(linear_model, x, t).sign(), 0, 1)
    assert torch.allclose(attack(linear_model, x, y, "tgsm", eps=0.1, target=t), expected, atol=1e-7, rtol=0)


def test_per_example_eps_matches_scalar_eps(tiny_model, batch):
    x, y = batch
    radii = torch.tensor([0.0, 0.1, 0.3]).repeat(8)
    together = fgsm(tiny_model, x, y, eps=radii)
    for r in (0.0, 0.1, 0.3):
        rows = radii == r
        assert torch.allclose(together[rows], fgsm(tiny_model, x[rows], y[rows], eps=r), atol=1e-6)


def test_pgd_restarts_never_hurt(tiny_model, synthetic):
    x, y = synthetic[0][:64], synthetic[1][:64]
    one = accuracy(tiny_model, pgd(tiny_model, x, y, eps=0.1, steps=3, seed=5), y)
    three = accuracy(tiny_model, pgd(tiny_model, x, y, eps=0.1, steps=3, restarts=3, seed=5), y)
    assert three <= one


@pytest.mark.parametrize("method", ["pgd", "square", "iterated_tgsm"])
def test_seeded_attacks_are_reproducible(tiny_model, batch, method):
    x, y = batch
    kw = {"target": "random"} if ATTACKS[method].targeted else {}
    assert torch.equal(run(tiny_model, x, y, method, 0.1, **kw), run(tiny_model, x, y, method, 0.1, **kw))


def test_jsma_changes_at_most_gamma_of_the_pixels(tiny_model, batch):
    x, y = batch[0][:8], batch[1][:8]
    for gamma in (0.01, 0.03):
        x_adv = attack(tiny_model, x, y, "jsma", theta=1.0, gamma=gamma)
        changed = (x_adv != x).flatten(1).sum(1)
        assert changed.max() <= gamma * x[0].numel()
        assert changed.max() > 0


def test_jsma_pair_search_matches_brute_force():
    generator = torch.Generator().manual_seed(0)
    alpha, beta = torch.randn(5, 9, generator=generator), torch.randn(5, 9, generator=generator)
    domain = torch.rand(5, 9, generator=generator) > 0.2
    p, q, found = _best_pairs(alpha, beta, domain)
    for n in range(5):
        scores = {(i, j): (alpha[n, i] + alpha[n, j]) * -(beta[n, i] + beta[n, j])
                  for i in range(9) for j in range(9)
                  if i != j and domain[n, i] and domain[n, j] and alpha[n, i] + alpha[n, j] > 0
                  and beta[n, i] + beta[n, j] < 0}
        assert bool(found[n]) == bool(scores)
        if scores:
            best = max(scores.values())
            assert torch.isclose(scores[(int(p[n]), int(q[n]))], best)


def test_registry_entries_document_themselves():
    for name in METHODS:
        spec = get_attack(name)
        assert spec.fn.__doc__ and "Returns" in spec.fn.__doc__, name
    assert ATTACKS["square"].gradient_free and ATTACKS["fgsm"].single_step and ATTACKS["tgsm"].single_step


def _captum_loss(out, target):
    return F.cross_entropy(out, target, reduction="none")


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_fgsm_agrees_with_captum(tiny_model, synthetic):
    from captum.robust import FGSM

    x, y = synthetic
    theirs = FGSM(tiny_model, loss_func=_captum_loss, lower_bound=0.0, upper_bound=1.0)
    for eps in (0.1, 0.2):
        ours = accuracy(tiny_model, fgsm(tiny_model, x, y, eps=eps), y)
        reference = accuracy(tiny_model, theirs.perturb(x, epsilon=eps, target=y), y)
        assert abs(ours - reference) <= 0.01


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
@pytest.mark.parametrize("eps", [0.1, 0.2])
def test_pgd_agrees_with_captum(tiny_model, synthetic, eps):
    # L∞ only: Captum's "L2" PGD takes sign steps and renormalizes, a different attack from a normalized-gradient one
    from captum.robust import PGD

    x, y = synthetic
    theirs = PGD(tiny_model, loss_func=_captum_loss, lower_bound=0.0, upper_bound=1.0)
    adv = theirs.perturb(x, radius=eps, step_size=eps / 4, step_num=5, target=y, random_start=False)
    ours = pgd(tiny_model, x, y, eps=eps, steps=5, step_size=eps / 4, random_start=False)
    assert abs(accuracy(tiny_model, ours, y) - accuracy(tiny_model, adv, y)) <= 0.01


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_pgd_is_captums_pgd_without_its_zero_threshold(tiny_model, synthetic):
    # Captum leaves a pixel alone when |∂L/∂x| <= 1e-6 (FGSM.zero_thresh); with that threshold off the two agree
    from captum.robust import PGD

    x, y = synthetic[0][:64], synthetic[1][:64]
    theirs = PGD(tiny_model, loss_func=_captum_loss, lower_bound=0.0, upper_bound=1.0)
    theirs.fgsm.zero_thresh = 0.0
    adv = theirs.perturb(x.clone(), radius=0.2, step_size=0.05, step_num=5, target=y)
    assert torch.equal(pgd(tiny_model, x, y, eps=0.2, steps=5, step_size=0.05, random_start=False), adv)
