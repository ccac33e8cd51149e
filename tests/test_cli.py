from __future__ import annotations

import pytest

from conftest import RECIPES
from nas_llv.cli import main
from nas_llv.registry import COMMANDS
from nas_llv.space.genotype import Genotype
from nas_llv.space.ops import OPS
from nas_llv.space.spec import load_space, shipped_spaces


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert command in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["ops", "spaces", "parts", "losses", "strategies", "hypergrads", "extensions", "datasets",
                                  "networks"])
def test_list(kind, capsys):
    assert main(["list", kind]) == 0
    out = capsys.readouterr().out.split("\n")
    names = {line.split()[0] for line in out if line.strip()}
    if kind == "parts":
        assert {"stem:", "reconstruction:", "ihem:"} <= {line.split()[1] for line in out if line.strip()}
    expected = {
        "ops": set(OPS), "spaces": set(shipped_spaces()), "parts": {"collaba_llsr", "trico_llsr"},
        "losses": {"ruas_scene", "ruas_denoise", "l1", "ssim", "perceptual", "luminance", "tv", "illum_prior",
                   "adversarial", "noise_level", "edge"},
        "strategies": {"cooperative", "global", "independent", "hyper", "cooperative_highlevel"},
        "hypergrads": {"first_order", "finite_difference", "unrolled_exact", "implicit_cg", "implicit_gn"},
        "extensions": {"hessian", "perturb", "aux_skip", "zero_one", "cost", "max_skip", "presence"},
        "datasets": {"demo", "demo_sr", "folder", "paired", "lol", "rellisur", "noisy_demo"},
        "networks": {"single", "ruas", "ruas_highlevel"},
    }[kind]
    assert expected <= names


def test_list_strategies_names_each_ones_loop(capsys):
    assert main(["list", "strategies"]) == 0
    kinds = {line.split()[0]: line.rsplit(" ", 1)[1] for line in capsys.readouterr().out.splitlines()
             if line.rstrip().endswith("]")}
    assert kinds["random"] == "[multi_trial]" and kinds["cooperative"] == kinds["hyper"] == "[one_shot]"


def test_list_says_what_each_entry_is_and_its_keys(capsys):
    assert main(["list", "datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    folder = lines.index(next(line for line in lines if line.startswith("folder ")))
    assert "no ground truth" in lines[folder] and lines[folder + 1].split() == ["keys:", "root=None"]
    assert main(["list", "losses"]) == 0
    out = capsys.readouterr().out
    assert "keys: key='u', level=0.6, patch=16, power=1" in out and "exposure control" in out


def test_space_draw_writes_a_png(tmp_path, capsys):
    out = tmp_path / "cell.png"
    assert main(["space", "draw", "ruas_cell", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_space_show_summarises(capsys):
    assert main(["space", "show", "ruas_denoise"]) == 0
    out = capsys.readouterr().out
    assert "architectures in the space: 823,543" in out and "30,267 parameters" in out


def test_derive_genotype_file(tmp_path, capsys):
    space = load_space("ruas_denoise")
    choices = {e.label: "conv_3x3" for e in space.cell.searchable}
    path = Genotype({"type": "single"}, {"net": space}, choices).save(tmp_path / "genotype.yaml")
    assert main(["derive", str(path), "--size", "32x24", "--draw"]) == 0
    out = capsys.readouterr().out
    assert "params:" in out and "FLOPs at 32x24" in out
    assert (tmp_path / "cell_net.png").is_file()


def test_bad_override_is_one_line(capsys):
    assert main(["search", str(RECIPES / "ruas_demo.yaml"), "search.epochs=zero"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "search.epochs: expected int, got 'zero'" in err


@pytest.mark.parametrize("argv, absent", [
    (["list", "ops"], ["nni", "pytorch_lightning", "torchvision", "nas_llv.losses", "nas_llv.search"]),
    (["--help"], ["torch", "nni", "nas_llv.space.ops"]),
    (["space", "show", "ruas_cell"], ["nni", "pytorch_lightning", "nas_llv.search"]),
    (["list", "strategies"], ["nni", "torchvision", "nas_llv.losses"]),  # recipe checks import the strategies
    # a search that fails on its input answers before the network, the metrics or torchvision load
    (["search", str(RECIPES / "ruas_lol.yaml")], ["nni", "pytorch_lightning", "torchvision",
                                                   "nas_llv.evaluation.scoring"]),  # its data is missing
    (["search", str(RECIPES / "ruas_demo.yaml"), "search.epoch=2"], ["nni", "torchvision", "nas_llv.metrics"]),
])
def test_commands_leave_heavy_modules_unimported(argv, absent):
    import subprocess
    import sys

    code = ("import sys\nfrom nas_llv.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print([m for m in {absent!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_threads_option_sets_torch_threads(capsys):
    import torch

    try:
        assert main(["list", "ops", "--threads", "3"]) == 0
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(1)
        import os

        os.environ["OMP_NUM_THREADS"] = "1"
