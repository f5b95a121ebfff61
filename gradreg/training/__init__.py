"""Training: the one loop (``loop``), the input-gradient penalties (``regularizers``), checkpoint storage
(``checkpoints``, ``files``), ``load_or_train`` above both (``reuse``), background runs for the dashboard (``jobs``)
and how long a run takes on this machine (``timing``: a probe of real steps). Many models at once are a sweep
(``gradreg.sweeps``), the package above this one.

It imports ``gradreg.core``, ``gradreg.fastgrad``, ``gradreg.attacks`` (adversarial training) and
``gradreg.evaluation`` (validation accuracy); never the paper, lessons, explain, viz, cli or ui packages.
"""
