"""The paper's experiments: the pretrained zoo, its presets and manifest (``zoo``) and its build, a sweep over its
grid (``zoo_build``); one record builder per experiment (``experiments``, ``training_curves``, ``ablation``); the
run over a zoo (``reproduce``); the claims and their verdicts (``claims``); and the report (``report``,
``report_sections``, ``report_setup`` for the models, seeds and deviations, ``report_saved`` for the ablation and
strong-attack tables read from their JSON files, ``report_figures``).

It imports the library below it (core, attacks, training, evaluation, explain, sweeps) and ``gradreg.viz``; never
lessons, cli or ui.
"""
