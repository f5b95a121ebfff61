"""Human labels for registry keys (attacks, regularizers, defences, saliency methods, recipes, targets): the library
keeps short keys, the pages show these. A leaf: it imports nothing.
"""

from __future__ import annotations


LABELS = {
    "none": "None", "grad_y": "Grad Reg (y)", "grad_uniform": "Grad Reg (1/K)", "grad_fd": "Grad Reg (finite diff.)",
    "fgsm_at": "FGSM adv. training", "pgd_at": "PGD adv. training", "distill": "Defensive distillation",
    "fgsm": "FGSM", "tgsm": "TGSM (targeted)", "iterated_tgsm": "Iterated TGSM (targeted, unbounded)",
    "bim": "BIM", "pgd": "PGD", "jsma": "JSMA (targeted)", "square": "Square (gradient-free)",
    "apgd": "APGD (Auto-PGD)", "apgd_t": "APGD-T (targeted DLR, picks its targets)",
    "ensemble": "AutoAttack ensemble (APGD-CE, APGD-T, Square)",
    "input_gradient": "Input gradient ∇ₓ log p", "loss_gradient": "Loss gradient ∇ₓ CE",
    "sum_log_prob_gradient": "∇ₓ Σ log p (1/K view)", "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad", "input_x_gradient": "Input × Gradient", "guided_backprop": "Guided Backprop",
    "deeplift": "DeepLIFT", "occlusion": "Occlusion", "gradcam": "Grad-CAM",
    "authors": "The authors' (Xavier init, no BatchNorm γ, Adam ε 1e-4)", "torch": "PyTorch's defaults",
    "next": "next class (y + 1) mod K", "least_likely": "least likely class", "random": "random other class",
}


def label(key: str) -> str:
    return LABELS.get(key, key)
