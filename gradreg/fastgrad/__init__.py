"""Faster input gradients: weight-sharing copies of a model that the attack loop and the penalties differentiate,
exact up to float rounding (``copies``), and the layers they swap in (``conv_input_gradient``, ``batchnorm_train``).

It sits below both attacks and training and imports only ``gradreg.core``.
"""

from gradreg.fastgrad.copies import eval_gradient_model, input_gradient_model

__all__ = ["eval_gradient_model", "input_gradient_model"]
