"""backbones.py: one registry that the configs, the model's layer check, the prompt embedding and
the command-line choices all read, so a new architecture is one entry."""
from __future__ import annotations

import argparse
import dataclasses

import pytest
import torch

import instantrestore.generator.backbones as backbones
from instantrestore import InstantRestore
from instantrestore.cli import common, train as cli_train
from instantrestore.generator.config import backbone_config


def test_every_registered_backbone_has_a_config():
    for name, spec in backbones.BACKBONES.items():
        cfg = backbone_config(name)
        assert cfg.backbone == name and cfg.unet == spec.unet and cfg.base_model == spec.hub_id
    assert backbone_config("sd-turbo").base_model == "stabilityai/sd-turbo"
    assert backbone_config("tiny").image_size == 128 and backbone_config("sd-turbo").image_size == 512
    with pytest.raises(ValueError, match="unknown backbone 'sdxl'; choose one of 'tiny', 'sd-turbo'"):
        backbone_config("sdxl")
    assert backbones.get_backbone("custom").injected_layers is None
    assert backbones.match_pretrained(dict(backbones.SD_TURBO_UNET, sample_size=96)) == "sd-turbo"
    assert backbones.match_pretrained(backbones.TINY_UNET) is None  # no pretrained tiny weights


def _backbone_choices(parser: argparse.ArgumentParser) -> list[str] | None:
    for action in parser._actions:
        if "--backbone" in action.option_strings:
            return list(action.choices)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if (found := _backbone_choices(sub)) is not None:
                    return found
    return None


def test_the_command_line_offers_the_registry():
    model_args, train_args = argparse.ArgumentParser(), argparse.ArgumentParser()
    common.add_model_arguments(model_args)
    cli_train.register(train_args.add_subparsers())
    assert _backbone_choices(model_args) == _backbone_choices(train_args) == backbones.backbone_names()


def test_a_new_backbone_is_one_entry(monkeypatch):
    calls = []
    tiny = backbones.BACKBONES["tiny"]
    entry = dataclasses.replace(tiny, name="tiny-checked", injected_layers=4,
                                unet_inputs=lambda model, batch: calls.append(batch) or {})
    monkeypatch.setitem(backbones.BACKBONES, entry.name, entry)
    from instantrestore.train.config import TrainConfig  # its choices are read at import: the registry's names

    model = InstantRestore.from_config("tiny-checked", seed=0).eval()
    assert model.config.backbone == "tiny-checked" and len(model.injected_layers) == 4
    model.restore(torch.zeros(2, 3, 64, 64))
    assert calls == [2]  # the extra UNet inputs are asked for at every UNet call
    monkeypatch.setitem(backbones.BACKBONES, entry.name, dataclasses.replace(entry, injected_layers=9))
    with pytest.raises(ValueError, match="expected 9 decoder self-attention layers, found 4"):
        InstantRestore.from_config("tiny-checked", seed=0)
    with pytest.raises(ValueError, match="backbone must be one of"):
        TrainConfig(backbone="no-such-backbone")
