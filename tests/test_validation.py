"""``check_fit`` probes a model once per input kind, and still rejects what does not fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradreg.core.validation import check_fit


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.body(x)


def test_probe_runs_once_per_model_and_input_kind():
    model = Counting().eval()
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    assert check_fit(model, x, y) == 10 and model.calls == 1
    check_fit(model, x[:3], y[:3])
    assert model.calls == 1  # same kind of input: remembered
    with pytest.raises(ValueError, match="do not fit"):
        check_fit(model, x.double(), y)  # another dtype is probed again, and refused
    assert model.calls == 2
    other = Counting().eval()
    check_fit(other, x)
    assert other.calls == 1


def test_remembered_fit_still_checks_labels_and_images():
    model = Counting().eval()
    x = torch.rand(4, 1, 28, 28)
    check_fit(model, x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        check_fit(model, x, torch.full((4,), 10))
    with pytest.raises(ValueError, match="do not fit"):
        check_fit(model, torch.rand(4, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_fit(model, x * float("nan"))
