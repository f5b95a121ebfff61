"""Helpers on ``nn.Module`` trees that every layer above uses: run a model in eval mode and restore each submodule's
own mode, list a tree's modules fast, find a model's device, and copy a tree that shares its parameters.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the model in eval mode and restore every submodule's own mode afterwards.

    Restoring module by module (not ``model.train(was_training)``, which recurses) keeps a wrapper in training mode
    around a shared eval-mode model from flipping that model into training mode."""
    modes = [(module, module.training) for module in module_tree(model)]
    if not any(training for _, training in modes):  # a shared, frozen model: nothing to set or restore
        yield model
        return
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def module_tree(model: nn.Module) -> list[nn.Module]:
    """``model`` and its submodules (a shared one may repeat): half the time of ``modules()``, which runs on every
    1-image call."""
    tree, todo = [model], [model]
    while todo:
        for child in todo.pop()._modules.values():
            if child is not None:
                tree.append(child)
                todo.append(child)
    return tree


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any), found without walking the
    whole tree as ``next(model.parameters())`` does."""
    first = _first_parameter(model)
    return torch.device("cpu") if first is None else first.device


def _first_parameter(module: nn.Module) -> torch.Tensor | None:
    for p in module._parameters.values():
        if p is not None:
            return p
    for child in module._modules.values():
        if child is not None and (p := _first_parameter(child)) is not None:
            return p
    return None


def tree_copy(module: nn.Module, edit: Callable[[nn.Module, dict], type] = lambda module, state: type(module)
              ) -> nn.Module:
    """A copy of ``module``'s tree that shares its parameters, buffers and hooks: each module's ``__dict__`` is copied
    shallowly, its children recursively. ``edit(original, state)`` may change a copy's state (its children already
    copied) and returns the copy's class, so a caller can swap a layer's type, reorder children or drop hooks."""
    state = dict(module.__dict__)
    state["_modules"] = {k: None if m is None else tree_copy(m, edit) for k, m in module._modules.items()}
    clone = object.__new__(edit(module, state))
    clone.__dict__.update(state)
    return clone
