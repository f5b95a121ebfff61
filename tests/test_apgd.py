"""APGD, APGD-T and the AutoAttack-style ensemble: reference values on the linear model and attack sanity checks.

Sanity checks after Carlini et al. 2019 (arXiv 1902.06705, §5) and Zimmermann et al. 2022 (arXiv 2206.13991): an
optimizer that reaches a known optimum, a loss that rises, a stronger attack that is never weaker than its parts or
than PGD, more effort or a larger ε that never helps the model, and ε = 1 that leaves no accuracy. The properties
every registered attack shares (ε-ball, [0, 1], eps=0, untouched inputs) are in test_attacks.py.
"""

from __future__ import annotations

import pytest
import torch

from gradreg.attacks.apgd import LOSSES, apgd, apgd_targeted, apgd_trace, checkpoints, dlr_loss, objective
from gradreg.attacks import attack, pgd, square, target_classes
from gradreg.attacks.ensemble import STAGES, ensemble, ensemble_report
from gradreg.evaluation.accuracy import accuracy


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: many small gradient steps run several times faster on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def batch(synthetic):
    return synthetic[0][:64], synthetic[1][:64]


def _predict(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def _fooled(model, x_adv, y):
    return _predict(model, x_adv) != y


def test_checkpoints_follow_the_paper():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99: the gap shrinks by .03 down to .06 (Croce & Hein 2020, §3.2)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(5) == [1, 2, 3, 4, 5]  # whole steps, at least one apart


def test_dlr_loss_reference_values_and_invariance():
    logits = torch.tensor([[4.0, 1.0, 3.0, 0.0, 2.0]])
    y, t = torch.tensor([0]), torch.tensor([4])
    # untargeted: −(z_y − max_{j≠y} z_j) / (z_π1 − z_π3) = −(4 − 3) / (4 − 2)
    assert torch.allclose(dlr_loss(logits, y), torch.tensor([-0.5]))
    # targeted: −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2) = −(4 − 2) / (4 − 1.5)
    assert torch.allclose(dlr_loss(logits, y, t), torch.tensor([-0.8]))
    for loss, target in [("dlr", None), ("dlr", t)]:
        moved = objective(3.0 * logits - 7.0, y, loss=loss, target=target)
        assert torch.allclose(moved, objective(logits, y, loss=loss, target=target))
    assert torch.allclose(objective(logits, y, loss="margin", target=t), torch.tensor([-2.0]))


@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_targeted_margin_reaches_the_closed_form_optimum_on_linear_model(linear_model, synthetic, eps):
    # z_t − z_y = (W_t − W_y)·x + b_t − b_y is linear: over the ε-ball ∩ [0, 1] it peaks at the clipped vertex
    x, y = synthetic[0][:32], synthetic[1][:32]
    t = (y + 1) % 10
    weight = linear_model[1].weight
    optimum = (x + eps * (weight[t] - weight[y]).view_as(x).sign()).clamp(0, 1)
    x_best, trace = apgd_trace(linear_model, x, y, eps=eps, steps=10, loss="margin", target=t, seed=0)
    with torch.no_grad():
        reached = objective(linear_model(x_best), y, loss="margin", target=t)
        best = objective(linear_model(optimum), y, loss="margin", target=t)
    assert torch.allclose(reached, best, atol=1e-4, rtol=0)
    assert torch.allclose(trace[-1], reached, atol=1e-5)


@pytest.mark.parametrize("loss", ["dlr", "ce"])
def test_targeted_losses_beat_the_margin_vertex_on_linear_model(linear_model, synthetic, loss):
    # DLR and −CE(t) are not linear, so their optimum has no closed form; the margin's optimum is one feasible
    # point, and an optimizer of either loss must do at least as well there as that point does
    x, y = synthetic[0][:32], synthetic[1][:32]
    t = (y + 1) % 10
    weight = linear_model[1].weight
    vertex = (x + 0.1 * (weight[t] - weight[y]).view_as(x).sign()).clamp(0, 1)
    x_best, _ = apgd_trace(linear_model, x, y, eps=0.1, steps=20, loss=loss, target=t, seed=0)
    with torch.no_grad():
        reached = objective(linear_model(x_best), y, loss=loss, target=t)
        at_vertex = objective(linear_model(vertex), y, loss=loss, target=t)
    assert (reached >= at_vertex - 1e-5).all()


@pytest.mark.parametrize("loss", LOSSES)
def test_best_loss_trace_rises_and_ends_at_the_returned_point(tiny_model, batch, loss):
    x, y = batch[0][:32], batch[1][:32]
    x_best, trace = apgd_trace(tiny_model, x, y, eps=0.1, steps=10, loss=loss, seed=0)
    assert trace.shape == (11, 32)
    assert (trace[1:] >= trace[:-1]).all()  # the best loss never falls
    assert (trace[-1] > trace[0]).float().mean() >= 0.9 and trace[-1].mean() > trace[0].mean()
    with torch.no_grad():
        assert torch.allclose(objective(tiny_model(x_best), y, loss=loss), trace[-1], atol=1e-4)
    assert (x_best - x).abs().max() <= 0.1 + 1e-6 and 0 <= x_best.min() and x_best.max() <= 1


def test_apgd_is_at_least_as_strong_as_pgd(tiny_model, batch):
    x, y = batch
    ours = accuracy(tiny_model, apgd(tiny_model, x, y, eps=0.1, steps=20, seed=0), y)
    theirs = accuracy(tiny_model, pgd(tiny_model, x, y, eps=0.1, steps=20, seed=0), y)
    assert ours <= theirs + 0.02  # measured: 0.33 against 0.42


def test_ensemble_is_at_least_as_strong_as_its_members_and_pgd(tiny_model, batch):
    x, y = batch
    kw = {"eps": 0.1, "steps": 10}
    worst = _fooled(tiny_model, ensemble(tiny_model, x, y, targets=2, queries=100, seed=0, **kw), y)
    # stage i runs with seed + i on the images the earlier stages left: APGD-CE is the same run as alone
    assert (worst >= _fooled(tiny_model, apgd(tiny_model, x, y, seed=0, **kw), y)).all()
    members = [apgd_targeted(tiny_model, x, y, targets=2, seed=1, **kw), square(tiny_model, x, y, eps=0.1,
               queries=100, seed=2), pgd(tiny_model, x, y, seed=0, **kw)]
    # APGD-T and Square run on fewer images inside the ensemble, with other random draws: no per-image inclusion,
    # only about as many fooled (measured at seeds 0-2: 0.69-0.70 fooled against APGD-T alone's 0.70-0.73)
    for x_adv in members:
        assert worst.float().mean() >= _fooled(tiny_model, x_adv, y).float().mean() - 0.05


def test_more_restarts_only_add_successes(tiny_model, batch):
    x, y = batch
    one = _fooled(tiny_model, apgd(tiny_model, x, y, eps=0.1, steps=10, seed=3), y)
    three = _fooled(tiny_model, apgd(tiny_model, x, y, eps=0.1, steps=10, restarts=3, seed=3), y)
    assert (three >= one).all()


def test_more_steps_do_not_raise_accuracy(tiny_model, batch):
    # not guaranteed per image (the checkpoints move with the budget); measured 0.61 after 10 steps, 0.31 after 40
    x, y = batch
    few = accuracy(tiny_model, apgd(tiny_model, x, y, eps=0.1, steps=10, seed=0), y)
    many = accuracy(tiny_model, apgd(tiny_model, x, y, eps=0.1, steps=40, seed=0), y)
    assert many <= few


def test_accuracy_falls_with_eps_to_zero_at_one(tiny_model, batch):
    x, y = batch[0][:32], batch[1][:32]
    grid = [0.0, 0.05, 0.1, 0.2, 1.0]
    accs = [accuracy(tiny_model, apgd(tiny_model, x, y, eps=eps, steps=10, seed=0), y) for eps in grid]
    assert accs[0] == accuracy(tiny_model, x, y)
    assert all(b <= a for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] == 0.0  # ε = 1 reaches every image


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_targeted_apgd_reaches_its_target_on_an_undefended_model(tiny_model, batch, loss):
    x, y = batch[0][:32], batch[1][:32]
    t = target_classes(tiny_model, x, y, "next")
    x_best, _ = apgd_trace(tiny_model, x, y, eps=0.3, steps=10, loss=loss, target=t, seed=0)
    assert (_predict(tiny_model, x_best) == t).float().mean() >= 0.8  # measured 0.88 (ce) and 1.0 (margin)


def test_apgd_t_fools_nearly_everything_at_large_eps(tiny_model, batch):
    x, y = batch[0][:32], batch[1][:32]
    x_adv = apgd_targeted(tiny_model, x, y, eps=0.3, steps=10, targets=2, seed=0)
    assert accuracy(tiny_model, x_adv, y) <= 0.05


def test_misclassified_images_come_back_unchanged(tiny_model, batch):
    x, y = batch
    wrong = (y + 1) % 10  # every image starts misclassified against these labels
    assert torch.equal(apgd(tiny_model, x, wrong, eps=0.1, steps=3), x)
    assert torch.equal(ensemble(tiny_model, x, wrong, eps=0.1, steps=3, targets=1, queries=10), x)


@pytest.mark.parametrize("fn", [apgd, apgd_targeted, ensemble])
def test_eps_zero_and_per_example_eps(tiny_model, batch, fn):
    x, y = batch[0][:16], batch[1][:16]
    kw = {"steps": 3, **({"targets": 1} if fn is not apgd else {}), **({"queries": 10} if fn is ensemble else {})}
    assert torch.equal(fn(tiny_model, x, y, eps=0.0, **kw), x)
    radii = torch.tensor([0.0, 0.2]).repeat(8)
    x_adv = fn(tiny_model, x, y, eps=radii, seed=0, **kw)
    assert torch.equal(x_adv[radii == 0], x[radii == 0])
    assert (x_adv - x).abs().amax((1, 2, 3)).max() <= 0.2 + 1e-6


def test_trace_at_eps_zero_is_flat_and_returns_x(tiny_model, batch):
    x, y = batch[0][:8], batch[1][:8]
    x_best, trace = apgd_trace(tiny_model, x, y, eps=0.0, steps=4, seed=0)
    assert torch.equal(x_best, x) and torch.equal(trace, trace[:1].expand_as(trace))


def test_trace_and_report_leave_inputs_model_and_grads_alone(batch):
    from gradreg.core.models import build_model

    torch.manual_seed(3)
    model = build_model("small_cnn").train()
    x, y = batch[0][:8], batch[1][:8]
    x = x.clone().requires_grad_(True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    apgd_trace(model, x, y, eps=0.1, steps=3, target=(y + 1) % 10, seed=0)
    ensemble_report(model, x, y, eps=0.1, steps=3, targets=1, queries=10, alone=True)
    assert model.training and x.grad is None and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_seeded_runs_are_reproducible(tiny_model, batch):
    x, y = batch[0][:16], batch[1][:16]
    for method, kw in [("apgd", {"steps": 5}), ("apgd_t", {"steps": 5, "targets": 2}),
                       ("ensemble", {"steps": 3, "targets": 1, "queries": 20})]:
        assert torch.equal(attack(tiny_model, x, y, method, eps=0.1, seed=4, **kw),
                           attack(tiny_model, x, y, method, eps=0.1, seed=4, **kw))


def test_ensemble_report_records_each_stage(tiny_model, batch):
    x, y = batch[0][:32], batch[1][:32]
    kw = {"eps": 0.1, "steps": 5, "targets": 1, "queries": 50, "seed": 0}
    report = ensemble_report(tiny_model, x, y, alone=True, **kw)
    assert {"n", "eps", "clean_accuracy", "robust_accuracy", "seconds", "stages"} <= set(report)
    assert report["n"] == 32 and report["clean_accuracy"] == accuracy(tiny_model, x, y)
    stages = report["stages"]
    assert [s["attack"] for s in stages] == list(STAGES)
    cumulative = [report["clean_accuracy"]] + [s["accuracy"] for s in stages]
    assert all(b <= a for a, b in zip(cumulative, cumulative[1:]))
    assert report["robust_accuracy"] == stages[-1]["accuracy"]
    assert all(report["robust_accuracy"] <= s["alone"] for s in stages)
    assert stages[0]["attacked"] == round(32 * report["clean_accuracy"]) and all(s["seconds"] >= 0 for s in stages)
    # the attack the registry runs is the report's worst case
    assert accuracy(tiny_model, ensemble(tiny_model, x, y, **kw), y) == report["robust_accuracy"]


def test_bad_arguments_raise_naming_the_valid_choices(tiny_model, batch):
    x, y = batch[0][:8], batch[1][:8]
    with pytest.raises(ValueError, match="valid: ce, dlr, margin"):
        apgd(tiny_model, x, y, eps=0.1, loss="hinge")
    with pytest.raises(ValueError, match="valid: ce, dlr, margin"):
        attack(tiny_model, x, y, "apgd", eps=0.1, loss="cw")
    for kw in [{"steps": 0}, {"restarts": 0}, {"steps": 2.5}, {"restarts": True}]:
        with pytest.raises(ValueError, match=next(iter(kw))):
            apgd(tiny_model, x, y, eps=0.1, **kw)
    with pytest.raises(ValueError, match="at most K - 1 = 9"):
        apgd_targeted(tiny_model, x, y, eps=0.1, targets=10)
    with pytest.raises(ValueError, match="targets"):
        ensemble(tiny_model, x, y, eps=0.1, targets=0)
    with pytest.raises(ValueError, match="queries"):
        attack(tiny_model, x, y, "ensemble", eps=0.1, queries=0)
    with pytest.raises(ValueError, match="different from y"):
        apgd_trace(tiny_model, x, y, eps=0.1, target=y)
    with pytest.raises(ValueError, match="targeted attacks: iterated_tgsm, jsma, tgsm"):
        attack(tiny_model, x, y, "apgd_t", eps=0.1, target="next")  # APGD-T picks its own targets
    with pytest.raises(ValueError, match="eps"):
        ensemble_report(tiny_model, x, y, eps=-0.1)
    with pytest.raises(ValueError, match="alone"):
        ensemble_report(tiny_model, x, y, eps=0.1, alone="yes")


def test_agrees_with_the_authors_apgd(tiny_model, batch):
    """Cross-check against the authors' package when it is installed (a test-only, optional dependency)."""
    autopgd = pytest.importorskip("pyautoattack.autopgd_base")
    x, y = batch
    for loss in ("ce", "dlr"):
        ours = accuracy(tiny_model, apgd(tiny_model, x, y, eps=0.1, steps=50, loss=loss, seed=0), y)
        reference = autopgd.APGDAttack(tiny_model, n_iter=50, eps=0.1, loss=loss, seed=0, device=x.device)
        assert abs(ours - accuracy(tiny_model, reference.perturb(x, y), y)) <= 0.05, loss
    ours = accuracy(tiny_model, apgd_targeted(tiny_model, x, y, eps=0.05, steps=50, targets=3, seed=0), y)
    reference = autopgd.APGDAttack_targeted(tiny_model, n_iter=50, eps=0.05, n_target_classes=3, seed=0,
                                            device=x.device)
    assert abs(ours - accuracy(tiny_model, reference.perturb(x, y), y)) <= 0.05
