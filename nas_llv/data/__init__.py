"""The data layer: image IO, folder datasets (paired, LOL, unpaired, RELLISUR-style SR), an
embedded demo set, and endless resumable batch streams for bilevel search.

``DATASETS`` imports every module in this package on its first lookup (``nas_llv.registry``),
which registers the dataset builders (``nas-llv list datasets``; ``synth`` is low-light
synthesis, docs/data.md): a new dataset is one new file here.
"""
from __future__ import annotations

from nas_llv.data.builders import build_dataset
from nas_llv.data.demo import (SOURCE_NAMES, TensorPairs, darken, demo_pairs, demo_sr_pairs,
                               linear_to_srgb, srgb_to_linear)
from nas_llv.data.folders import LOL_SPLITS, PairedFolder, UnpairedFolder, lol, match_pairs
from nas_llv.data.io import IMAGE_EXTS, list_images, read_image, write_image
from nas_llv.data.noisy import add_noise, noisy_pairs
from nas_llv.data.loaders import BatchStream, DataConfig, build_loaders, collate, split_indices
from nas_llv.data.rellisur import LowLightSRFolder
from nas_llv.data.synth import SynthOptions, SynthPairs, synthesise

__all__ = [
    "IMAGE_EXTS", "LOL_SPLITS", "SOURCE_NAMES", "BatchStream", "DataConfig", "LowLightSRFolder",
    "PairedFolder", "TensorPairs", "UnpairedFolder", "add_noise", "build_dataset", "build_loaders", "collate",
    "darken", "demo_pairs", "demo_sr_pairs", "linear_to_srgb", "list_images", "lol", "match_pairs", "noisy_pairs",
    "read_image", "split_indices", "srgb_to_linear", "SynthOptions", "SynthPairs", "synthesise", "write_image",
]
