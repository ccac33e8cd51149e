"""Named choices the CLI offers, kept free of heavy imports so `nas-llv --help` starts fast."""
from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")            # or cuda:N
OUTPUTS = ("x", "u")                         # final image, or the scene module's enhanced u
METRICS = ("psnr", "ssim", "lpips", "rmse")
RELEASES = ("cvpr", "tpami")                 # published RUAS weight layouts
RUAS_VARIANTS = ("ruas_s", "ruas", "ruas_a")
ENGINES = ("torch", "fast", "compiled")  # a torch network as built, folded, folded + compiled
SPLIT_DIRS = {"train": "train", "val": "val", "test": "test", "eval": "test"}  # RELLISUR split folders
