"""The dashboard's Streamlit side, the only package that imports streamlit, split by concern: human labels
(``labels``, a leaf), the models on this server (``catalogue``), cached computations (``compute``), widgets that
return plain values (``widgets``), the zoo cards' metrics (``cards``), the training panel (``train_panel``), sweeps'
results folders (``sweeps``), URL sharing and teacher mode (``share``, with its rules in ``urlstate``), the server's
fair-use caps (``limits``), heavy computations as bounded, cancellable runs (``bounded``, ``heavy``) and the page frame (``frame``).

Pages import this package and call what it re-exports below; ``app.py`` calls ``use_threads`` once. The library
below (core … lessons, viz) never imports it. Models cached here are shared by every session and thread, so they are
frozen and in eval mode; caches are keyed by primitives.
"""

from gradreg.ui.cards import card_metrics
from gradreg.ui.catalogue import (common_dataset, datasets, describe, list_models, load_model, model_dirs,
                                  model_labels, short_name, signature, usable_models, usable_models_or_stop, zoo,
                                  zoo_dir, zoo_or_stop)
from gradreg.ui.compute import (attack_panel, cell_examples, compare_figures, digit_reaction, gallery, images,
                                judge_rates, map_figure, masking_verdicts, morph_grid, prewarm_maps, quiz_question,
                                randomization_table, robust_point, saliency_maps, saliency_methods, saliency_metrics,
                                showcase_digit, showcase_figure, showcase_view, test_batch, test_size, transfer_cells)
from gradreg.ui.frame import (enter_page, failures, routed, sidebar_navigation, sidebar_status, use_threads,
                              within_limits)
from gradreg.ui.labels import LABELS, label
from gradreg.ui.share import advanced, fragment, share, sync_url, teaching_box
from gradreg.ui.sweeps import folder_label, metric_picker, open_in_attack_lab, sweep_folders, sweep_results
from gradreg.ui.train_panel import start_training, train_form, training_panel
from gradreg.ui.heavy import accuracy_curves, curve_settings, masking_results, metrics_table, morph_results
from gradreg.ui.widgets import (attack_controls, delete_own_model, digits_picker, image_picker, model_picker,
                                show_models, strong_attack_table)

__all__ = [
    "accuracy_curves", "advanced", "attack_controls", "attack_panel", "card_metrics", "cell_examples", "common_dataset",
    "compare_figures", "datasets", "delete_own_model", "describe", "digit_reaction", "digits_picker", "enter_page",
    "failures", "fragment", "gallery", "image_picker", "images", "judge_rates", "label", "LABELS", "list_models",
    "load_model", "map_figure", "masking_verdicts", "metrics_table", "model_dirs", "model_labels", "model_picker",
    "morph_grid", "prewarm_maps", "quiz_question", "randomization_table", "robust_point", "routed", "saliency_maps",
    "saliency_methods", "saliency_metrics", "share", "short_name", "show_models", "showcase_digit", "showcase_figure",
    "showcase_view", "sidebar_navigation", "sidebar_status", "signature", "start_training", "strong_attack_table",
    "sync_url", "teaching_box", "test_batch", "test_size", "train_form", "training_panel", "transfer_cells",
    "usable_models", "usable_models_or_stop", "use_threads", "within_limits", "zoo", "zoo_dir", "zoo_or_stop",
    "curve_settings", "masking_results", "morph_results",
    "folder_label", "metric_picker", "open_in_attack_lab", "sweep_folders", "sweep_results",
]
