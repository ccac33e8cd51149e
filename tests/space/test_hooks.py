"""The model and network hooks are Protocols: the shipped models declare them, a plain module none."""
from __future__ import annotations

import pytest
from torch import nn

from nas_llv.registry import MODELS
from nas_llv.space.models import RUAS
from nas_llv.space.models.hooks import EntryOutputs, IlluminationModules, ObjectiveModules, PartChoices, PartialForward

NETWORK_HOOKS = (IlluminationModules, ObjectiveModules, EntryOutputs, PartialForward)


@pytest.mark.parametrize("hook", NETWORK_HOOKS)
def test_ruas_declares_every_network_hook_and_a_plain_module_none(hook):
    assert isinstance(RUAS(nn.Identity(), nn.Identity()), hook)
    assert not isinstance(nn.Identity(), hook)


@pytest.mark.parametrize("name", ["trico_llsr", "collaba_llsr"])
def test_the_llsr_models_declare_their_part_choices(name):
    model = MODELS.get(name)
    assert isinstance(model, PartChoices) and model.part_choices({})["upscaler"]
    assert not isinstance(MODELS.get("ruas_scene"), PartChoices)
