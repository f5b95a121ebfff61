"""The base: what a model is and what it is trained on. ``config`` (the frozen ``TrainConfig``, ``RECIPES``,
``config_id``), ``data`` (``DATASETS``, ``load_dataset``: images in [0, 1]), ``models`` (``MODELS``, ``build_model``),
``validation`` (the input checks every public function shares) and ``modules`` (eval mode, module trees, devices,
weight-sharing copies).

It imports nothing else of gradreg: every other package stands on it.
"""

__version__ = "0.1.0"
