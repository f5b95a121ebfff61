"""Evaluation that returns data: clean and robust accuracy and attack statistics (``accuracy``), transfer matrices
(``transfer``) and gradient-masking checks (``masking``).

It imports ``gradreg.core`` and ``gradreg.attacks`` only; training, the paper and the UI stand above it.
"""
