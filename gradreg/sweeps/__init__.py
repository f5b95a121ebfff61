"""Sweeps: many models trained and evaluated as one grid, on one machine or a Ray cluster.

A sweep file (``spec``: TOML → frozen ``TrainConfig``s, pure and validated) expands into ``Trial``s; ``trial`` runs
one (``load_or_train`` into content-addressed storage, then the model's card); ``runner`` runs them in stages (a
trial runs after the trials it reads), ``serial`` in this process or on Ray Tune (``ray_backend``, embedded
single-node by default, a cluster by address); ``results`` writes and summarizes the tidy table of every trial.

It imports ``gradreg.core``, ``gradreg.attacks``, ``gradreg.evaluation`` and ``gradreg.training``; never the paper,
lessons, cli or ui packages. Ray is imported only by ``ray_backend``, when a sweep runs on it; ``results`` imports
no torch, so the dashboard reads a results folder without starting anything.
"""
