"""Models: the paper's CNN has its documented size; every model returns logits of shape (N, K)."""

from __future__ import annotations

import pytest
import torch

from gradreg.core.models import MODELS, build_model, count_parameters


def test_paper_cnn_has_the_papers_parameter_count():
    assert count_parameters(build_model("paper_cnn")) == 3_275_754  # PAPER.md §2: ≈ 3.27 M


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("activation", ["relu", "softplus", "gelu"])
def test_models_return_logits(name, activation):
    model = build_model(name, activation=activation, num_classes=7).eval()
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 7)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="small_cnn"):
        build_model("resnet")
