""""Which model made this?": quiz questions generated from real models, with an explanation made of measured facts.

A question shows one model's input-gradient map or FGSM adversarial example of a test digit; the learner guesses the
model. The explanation compares that picture's total variation (smoothness) and the models' averages, which is how
Ross & Doshi-Velez (AAAI 2018, https://arxiv.org/abs/1711.09404, PAPER.md §7) tell regularized gradients (smooth, on
the strokes) from plain ones (noisy) and masked ones (distillation: exactly-zero gradients).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from gradreg.attacks import attack
from gradreg.evaluation.accuracy import predict
from gradreg.explain.metrics import total_variation
from gradreg.explain.saliency import saliency
from gradreg.lessons.zoo_views import showcase
from gradreg.paper.zoo import REFERENCE

KINDS = ("saliency", "adversarial")


def drawn_kind(n_models: int, seed: int) -> str:
    """The kind of question ``make_question`` draws for ``seed`` among ``n_models`` (before computing anything), so
    a page shows the ε slider only for the questions that attack."""
    rng = np.random.default_rng(seed)
    rng.integers(n_models)  # the answer's draw comes first, as in make_question
    return KINDS[int(rng.integers(len(KINDS)))]
FIRST_SEEDS = 16  # a session's first question is one of these, precomputed with the zoo; "Next" counts on from it
POOL = 64  # test images per question: one is shown, the averages in the explanation use all of them
CONTRASTS = ("fgsm_at", "distill", "pgd_at", "both", "grad_uniform")  # zoo names that look unlike plain and Grad Reg


def candidates(manifest: Mapping, *, count: int = 4) -> list[dict]:
    """Up to ``count`` zoo models worth telling apart: plain, the showcase Grad Reg (y), then defences, in that order.

    Returns:
        ``[{"name", "id"}]`` (zoo names and checkpoint ids); empty when the zoo has neither plain nor Grad Reg (y).
    """
    pair = showcase(manifest)
    names = [REFERENCE, pair[1]["name"] if pair else "", *CONTRASTS]
    by_name = {e["name"]: e["id"] for e in manifest.get("models", [])}
    return [{"name": n, "id": by_name[n]} for n in names if n in by_name][:count]


def _facts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> dict:
    """Per-image numbers of one model on ``x`` ``(N, 1, H, W)``: its maps, adversarial examples and their TVs."""
    maps = saliency(model, x, "pred", "input_gradient")  # (N, 1, H, W)
    x_adv = attack(model, x, y, "fgsm", eps=eps)
    delta = x_adv - x
    return {"maps": maps, "x_adv": x_adv, "delta": delta, "map_tv": total_variation(maps),
            "delta_tv": total_variation(delta), "zero": (maps == 0).flatten(1).float().mean(1),
            "delta_zero": (delta == 0).flatten(1).all(1).float(),
            "pred": predict(model, x), "pred_adv": predict(model, x_adv)}


def make_question(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor, *, seed: int,
                  eps: float = 0.2, kind: str | None = None) -> dict:
    """One quiz question, the same for the same ``seed``, models and images.

    Args:
        models: choice name → model (2–6; every one is a choice); x: a pool of test images ``(N, 1, H, W)`` in
            [0, 1] (the question picks one, the averages use all); y: labels ``(N,)``; eps: FGSM's L∞ radius;
            kind: one of ``KINDS``, or None to draw it.
    Returns:
        ``{"kind", "index", "label", "answer", "choices", "image" (H, W), "shown" (H, W): the map or the adversarial
        example, "delta" (H, W) or None, "this": the shown picture's facts, "averages": name → mean facts over the
        pool, "eps", "n", "pred", "pred_adv"}``; arrays are float32 numpy.
    """
    if not 2 <= len(models) <= 6:
        raise ValueError(f"a question needs 2 to 6 models, got {len(models)}")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown question kind {kind!r}; valid: {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    names = list(models)
    answer = names[int(rng.integers(len(names)))]
    drawn = KINDS[int(rng.integers(len(KINDS)))]  # drawn even when given: a seed picks the same model and digit
    kind = kind or drawn
    index = int(rng.integers(len(x)))
    choices = [names[i] for i in rng.permutation(len(names))]
    facts = {name: _facts(model, x, y, eps) for name, model in models.items()}
    mine = facts[answer]
    averages = {name: {"map_tv": float(f["map_tv"].mean()), "delta_tv": float(f["delta_tv"].mean()),
                       "zero": float(f["zero"].mean()),
                       "delta_zero": float(f["delta_zero"].mean()),
                       "fgsm_accuracy": float((f["pred_adv"] == y).float().mean())}
                for name, f in facts.items()}
    shown = mine["maps"] if kind == "saliency" else mine["x_adv"]
    return {"kind": kind, "index": index, "label": int(y[index]), "answer": answer, "choices": choices,
            "image": x[index, 0].numpy().astype(np.float32), "shown": shown[index, 0].numpy().astype(np.float32),
            "delta": mine["delta"][index, 0].numpy().astype(np.float32) if kind == "adversarial" else None,
            "this": {"map_tv": float(mine["map_tv"][index]), "delta_tv": float(mine["delta_tv"][index]),
                     "zero": float(mine["zero"][index]), "delta_zero": float(mine["delta_zero"][index])},
            "averages": averages, "eps": float(eps), "n": len(x), "pred": int(mine["pred"][index]),
            "pred_adv": int(mine["pred_adv"][index])}


def explain(question: Mapping, *, titles: Mapping[str, str] | None = None) -> str:
    """The answer and why, in markdown, from the question's measured facts (``titles``: name → display name)."""
    title = (lambda n: (titles or {}).get(n, n))
    avg, this = question["averages"], question["this"]
    who = f"It was **{title(question['answer'])}**."
    if question["kind"] == "saliency":
        listing = ", ".join(f"{title(n)} {a['map_tv']:.2f}" for n, a in avg.items())
        text = (f"{who} This map's total variation is **{this['map_tv']:.2f}** (0 = flat, ≈ 2.8 = pixel noise); "
                f"the models' average on {question['n']} test digits: {listing}. Smooth maps that follow the strokes "
                "are what input-gradient regularization buys.")
        if this["zero"] > 0.5:
            text += f" {this['zero']:.0%} of this map is exactly zero: the gradient underflows (masking)."
        return text
    listing = ", ".join(f"{title(n)} {a['delta_tv']:.2f}" for n, a in avg.items())
    accuracy = ", ".join(f"{title(n)} {a['fgsm_accuracy']:.0%}" for n, a in avg.items())
    verdict = ("still correct" if question["pred_adv"] == question["label"]
               else f"fooled: {question['pred']} → {question['pred_adv']}")
    text = f"{who} FGSM at ε = {question['eps']:g} on this digit: {verdict}. "
    if this["delta_zero"]:
        zero = ", ".join(f"{title(n)} {a['delta_zero']:.0%}" for n, a in avg.items())
        text += (f"The perturbation is exactly zero: the input gradient underflowed (gradient masking). Share of "
                 f"the {question['n']} digits with a zero perturbation: {zero}. ")
    else:
        text += (f"The perturbation's total variation is **{this['delta_tv']:.2f}** (lower = clumpier); averages on "
                 f"{question['n']} digits: {listing}. ")
    return text + f"FGSM accuracy there: {accuracy}."


def score(answers: Sequence[bool]) -> tuple[int, int]:
    """(right, asked) over a session's answers."""
    return sum(map(bool, answers)), len(answers)
