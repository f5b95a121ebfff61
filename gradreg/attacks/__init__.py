"""Adversarial attacks on [0, 1] images: the one projected-step loop (``descent``), one module per family
(``gradient``: FGSM, TGSM, iterated TGSM, BIM, PGD; ``saliency_map``: JSMA; ``random_search``: Square; ``apgd``:
APGD and APGD-T; ``ensemble``: AutoAttack's APGD-CE → APGD-T → Square), target
classes (``targets``) and the ``ATTACKS`` registry with ``attack(...)`` (``registry``). A new family is a module
here plus its entry in ``ATTACKS``.

It imports ``gradreg.core`` and ``gradreg.fastgrad`` only: never training, evaluation or anything above.
"""

from gradreg.attacks.apgd import apgd, apgd_targeted, apgd_trace
from gradreg.attacks.descent import NORMS, Eps, Norm, check_eps, check_epsilons, loss_gradient
from gradreg.attacks.ensemble import ensemble, ensemble_report
from gradreg.attacks.gradient import bim, fgsm, iterated_tgsm, pgd, single_step_sweep, tgsm
from gradreg.attacks.random_search import square
from gradreg.attacks.registry import ATTACKS, SIZES, AttackSpec, attack, get_attack, sized
from gradreg.attacks.saliency_map import jsma
from gradreg.attacks.targets import TARGETS, AttackTarget, target_classes

__all__ = ["ATTACKS", "NORMS", "SIZES", "TARGETS", "AttackSpec", "AttackTarget", "Eps", "Norm", "apgd", "apgd_targeted",
           "apgd_trace", "attack", "bim", "ensemble", "ensemble_report",
           "check_eps", "check_epsilons", "fgsm", "get_attack", "iterated_tgsm", "jsma", "loss_gradient", "pgd",
           "single_step_sweep", "sized", "square", "target_classes", "tgsm"]
