"""A run folder's layout is spelt once (nas_llv/layout.py): ``Run`` and ``RunFolder`` inherit its
accessors, and no other module of the package joins a run file's name onto a folder itself."""
from __future__ import annotations

import ast
from pathlib import Path

from nas_llv import layout
from nas_llv.layout import RunLayout
from nas_llv.runs import Run
from nas_llv.runview import RunFolder

PACKAGE = Path(__file__).resolve().parents[1] / "nas_llv"
NAMES = {layout.CONFIG, layout.TRAJECTORY, layout.GENOTYPE, layout.LAST, layout.MODEL, layout.MODEL_BEST,
         layout.MODEL_LAST, layout.CANDIDATES}


def test_the_accessors_name_the_documented_files(tmp_path):
    run = RunLayout(tmp_path)
    assert run.checkpoint_path() == tmp_path / "checkpoints" / "last.pt"
    assert run.checkpoint_path("best.pt") == tmp_path / "checkpoints" / "best.pt"
    assert (run.config_path, run.trajectory_path, run.genotype_path, run.model_path()) == (
        tmp_path / "config.yaml", tmp_path / "trajectory.csv", tmp_path / "genotype.yaml", tmp_path / "model.pt")
    assert run.eval_dir("../shared/data/mit5/") == tmp_path / "eval-mit5"
    (tmp_path / "eval-b").mkdir(), (tmp_path / "eval-a").mkdir(), (tmp_path / "eval-c.txt").touch()
    assert run.eval_dirs() == [tmp_path / "eval-a", tmp_path / "eval-b"]


def test_run_and_run_folder_reach_the_same_files(tmp_path):
    with Run.create({"name": "x"}, "x", tmp_path) as run:
        assert run.config_path.is_file() and RunFolder(run.dir).config_path == run.config_path
        saved = run.save_checkpoint({"kind": "search"})
        assert saved == run.checkpoint_path() == RunLayout(run.dir).checkpoint_path()


def _joins_a_run_file(node: ast.AST) -> bool:
    """``folder / "genotype.yaml"``, ``folder / f"eval-{name}"`` and the like."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)):
        return False
    right = node.right
    if isinstance(right, ast.Constant) and isinstance(right.value, str):
        return right.value in NAMES or right.value.startswith(layout.EVAL_PREFIX)
    if isinstance(right, ast.JoinedStr) and right.values and isinstance(right.values[0], ast.Constant):
        return str(right.values[0].value).startswith((layout.EVAL_PREFIX, "genotype_", "cell_"))
    return False


def test_no_module_but_the_layout_joins_a_run_file_by_hand():
    wrong = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in sorted(PACKAGE.rglob("*.py"))
             if path.name != "layout.py" for node in ast.walk(ast.parse(path.read_text())) if _joins_a_run_file(node)]
    assert not wrong, "run-folder paths built by hand (use nas_llv.layout.RunLayout's accessors): " + ", ".join(wrong)


def test_the_check_sees_a_path_built_by_hand():
    assert _joins_a_run_file(ast.parse('run_dir / "checkpoints" / "last.pt"').body[0].value)
    assert _joins_a_run_file(ast.parse('folder / f"eval-{Path(data).name}"').body[0].value)
    assert not _joins_a_run_file(ast.parse('out / "metrics.csv"').body[0].value)
