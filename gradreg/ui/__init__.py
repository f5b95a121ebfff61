"""The dashboard's Streamlit side, the only package that imports streamlit, split by concern: human labels
(``labels``, a leaf), the models on this server (``catalogue``), cached computations (``compute``), widgets that
return plain values (``widgets``), the zoo cards' metrics (``cards``), the training panel (``train_panel``), sweeps'
results folders (``sweeps``), URL sharing and teacher mode (``share``, with its rules in ``urlstate``), the server's
fair-use caps (``limits``), heavy computations as bounded, cancellable runs (``bounded``, ``heavy``), the page frame
(``frame``), the zoo's precomputed lessons (``stored``) and the background warm-up after a start (``warm``).

Pages import this package and call what it re-exports below, each name imported from its module on first use
(PEP 562): a page loads only what it calls, so the frame and a page's first lines answer before torch is imported
(``warm`` imports the rest in the background after the first run). ``app.py`` calls ``use_threads`` once. The library
below (core … lessons, viz) never imports it. Models cached here are shared by every session and thread, so they are
frozen and in eval mode; caches are keyed by primitives.
"""

import importlib

# Public name → the module of this package that defines it.
_NAMES = {
    "card_metrics": "cards",
    **dict.fromkeys(("common_dataset", "datasets", "describe", "list_models", "load_model", "model_dirs",
                     "model_labels", "short_name", "showcase_pair", "signature", "usable_models",
                     "usable_models_or_stop", "zoo", "zoo_dir", "zoo_or_stop"), "catalogue"),
    **dict.fromkeys(("attack_panel", "cell_examples", "compare_figures", "digit_reaction", "gallery", "images",
                     "judge_rates", "map_figure", "masking_verdicts", "morph_grid", "prewarm_maps", "quiz_question",
                     "randomization_table", "robust_point", "saliency_maps", "saliency_methods", "saliency_metrics",
                     "showcase_digit", "showcase_figure", "showcase_view", "test_batch", "test_size",
                     "transfer_cells"), "compute"),
    **dict.fromkeys(("enter_page", "failures", "routed", "sidebar_navigation", "sidebar_status", "use_threads",
                     "within_limits"), "frame"),
    **dict.fromkeys(("accuracy_curves", "curve_settings", "masking_results", "metrics_table", "morph_results"),
                    "heavy"),
    **dict.fromkeys(("label", "LABELS"), "labels"),
    **dict.fromkeys(("folder_label", "metric_picker", "open_in_attack_lab", "sweep_folders", "sweep_results"),
                    "sweeps"),
    **dict.fromkeys(("start_training", "train_form", "training_panel"), "train_panel"),
    "lessons_status": "stored",
    "warm_start": "warm",
    **dict.fromkeys(("attack_controls", "delete_own_model", "digits_picker", "image_picker", "model_picker",
                     "show_models", "strong_attack_table"), "widgets"),
}
# Bound now: the function ``share`` must win over the submodule of that name, which an import of it would otherwise
# leave in its place (the module imports no torch).
from gradreg.ui.share import advanced, fragment, share, sync_url, teaching_box  # noqa: E402, F401

__all__ = sorted([*_NAMES, "advanced", "fragment", "share", "sync_url", "teaching_box"], key=str.lower)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'gradreg.ui' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gradreg.ui.{_NAMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAMES})
