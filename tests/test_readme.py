"""The README is exactly true: every command of its shell blocks runs as written, in order, from
a folder laid out like a fresh clone beside ../shared. Long steps get small overrides appended
(later overrides win), so the whole README runs in about a minute."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
TINY_DATA = "data.demo_count=4 data.demo_size=32 data.crop=16 data.batch_size=1"
TINY_SYNTH = "data.synth_count=4 data.synth_size=32 data.crop=16 data.batch_size=1"
# recipe -> overrides appended to every command that runs it
SPEEDUPS = {
    "recipes/ruas_demo.yaml": f"search.epochs=2 search.steps_per_epoch=2 search.val_batches=1 {TINY_DATA}",
    "recipes/ruas_demo_train.yaml": f"train.steps=3 train.val_every=1 train.val_batches=1 {TINY_DATA}",
    "recipes/llsr_demo.yaml": "search.epochs=2 search.s2_epochs=1 search.steps_per_epoch=1 search.val_batches=1 "
                              "data.demo_count=4 data.demo_size=32 data.crop=8 data.batch_size=1",
    "recipes/llsr_demo_train.yaml": "train.steps=2 train.val_every=1 train.val_batches=1 "
                                    "data.demo_count=4 data.demo_size=32 data.crop=8 data.batch_size=1",
    "recipes/collaba_demo.yaml": "search.epochs=1 search.steps_per_epoch=1 search.val_batches=1 data.demo_count=4",
    "recipes/ruas_highlevel_demo.yaml": f"search.epochs=1 search.steps_per_epoch=1 search.val_batches=1 {TINY_DATA}",
    "recipes/ruas_quality.yaml": f"search.epochs=1 search.steps_per_epoch=1 search.val_batches=1 {TINY_SYNTH}",
    "recipes/ruas_quality_train.yaml": f"train.steps=2 train.val_every=1 train.val_batches=1 {TINY_SYNTH}",
    "recipes/own_photos.yaml": "search.epochs=1 search.steps_per_epoch=1 search.val_batches=1 data.crop=16 "
                               "data.batch_size=1",
    "recipes/own_photos_train.yaml": f"train.steps=2 train.val_every=1 train.val_batches=1 {TINY_SYNTH}",
    "recipes/ruas_unsupervised_train.yaml": "train.steps=2 train.val_every=1 train.val_batches=1 data.crop=16 "
                                            "data.batch_size=1",
}


def shell_blocks(text: str) -> list[str]:
    """The ```bash blocks after the two install lines (those are what CI itself runs)."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return blocks[1:]


def speed_up(script: str) -> str:
    out = []
    for line in script.splitlines():
        if "p.search(" in line or "p.train(" in line:  # a pipeline call: the overrides go into its list
            for recipe, extra in SPEEDUPS.items():
                items = ", ".join(f'"{e}"' for e in extra.split())
                line = re.sub(rf'"{re.escape(recipe)}"(, \[)?',
                              lambda m: f'"{recipe}", [{items}' + (", " if m.group(1) else "]"), line)
            out.append(line)
            continue
        for recipe, extra in SPEEDUPS.items():
            if line.lstrip().startswith(("nas-llv ", "RUN=", "TRAIN=", "STOPPED=", "LLSR=", "QUALITY=", "OWN=", "UNSUP=")) and recipe in line:
                code, hash_, comment = line.partition("  #")
                closing = ")" if code.rstrip().endswith(")") else ""
                code = code.rstrip()[: len(code.rstrip()) - len(closing)]
                line = f"{code} {extra}{closing}{hash_ and '  #' + comment}"
        out.append(line)
    return "\n".join(out)


def test_blocks_are_found():
    blocks = shell_blocks((REPO / "README.md").read_text())
    assert len(blocks) >= 3 and any("nas-llv search" in b for b in blocks)
    assert "search.epochs=2 search.steps_per_epoch=2" in speed_up("RUN=$(nas-llv search recipes/ruas_demo.yaml)  # x")
    fast = speed_up('run = p.search("recipes/ruas_demo.yaml")  # x\nt = p.train(run, "recipes/ruas_demo_train.yaml", ["a=1"])')
    assert '"recipes/ruas_demo.yaml", ["search.epochs=2", ' in fast and fast.splitlines()[0].endswith('"])  # x')
    assert '"train.steps=3", ' in fast and fast.endswith('"data.batch_size=1", "a=1"])')


def test_every_readme_command_runs_as_written(tmp_path, shared_data):
    clone = tmp_path / "main"
    clone.mkdir()
    for folder in ("recipes", "search_spaces"):
        shutil.copytree(REPO / folder, clone / folder)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED_DATA)
    script = "set -euo pipefail\n" + "\n".join(speed_up(b) for b in shell_blocks((REPO / "README.md").read_text()))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MPLBACKEND": "Agg"}
    done = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"README commands failed:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    for made in ("alphas.png", "cell.png", "table.md", "enhanced", "published/upe.pt", "ruas.onnx", "samples",
                 "report.html", "own_enhanced", "own.onnx", "unsupervised_enhanced"):
        assert (clone / "out" / made).exists(), made
    assert "evaluation: eval-mit5" in (clone / "out" / "report.html").read_text()  # the training run's scores
    assert "evaluation: eval-darkface5" in (clone / "out" / "own_report.html").read_text()  # no ground truth: NIQE
    assert (clone / "results" / "upe_model.pt").is_file()
    # what the README writes lands in out/ (ignored) and results/, nowhere else in the clone
    assert sorted(p.name for p in clone.iterdir()) == ["out", "recipes", "results", "search_spaces"]
    table = (clone / "out" / "table.md").read_text()
    assert "published/eval-mit5" in table and table.count("| mit5 |") == 2
