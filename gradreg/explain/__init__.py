"""Explanations: attribution maps over the ``SALIENCY_METHODS`` registry (``saliency``; Captum is imported on first
use), their quality metrics (``metrics``) and the model-randomization check (``randomization``).

It imports ``gradreg.core`` and ``gradreg.attacks`` (the loss gradient) only.
"""
