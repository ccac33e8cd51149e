from __future__ import annotations

import pytest

from nas_llv.config import ConfigError
from nas_llv.paths import check_output_dir, check_output_file


def test_writable_outputs_pass_and_nothing_is_created(tmp_path):
    (tmp_path / "old.png").write_bytes(b"x")
    (tmp_path / "runs").mkdir()
    assert check_output_file(tmp_path / "old.png") == tmp_path / "old.png"    # overwritten later
    assert check_output_file(tmp_path / "new/deeper/cell.png").name == "cell.png"
    assert check_output_dir(tmp_path / "runs") == tmp_path / "runs"
    assert check_output_dir(tmp_path / "new/run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png", "runs"]


@pytest.mark.parametrize(("check", "target", "message"), [
    (check_output_file, "f.txt/x.png", "f.txt is a file, not a folder"),
    (check_output_file, "d", "is a folder; give a file path"),
    (check_output_dir, "f.txt", "is a file, not a folder"),
    (check_output_dir, "f.txt/sub/run", "f.txt is a file"),
    (check_output_file, "/proc/nas-llv/x.png", "virtual file system"),
    (check_output_dir, "/sys/nas-llv", "virtual file system"),
])
def test_unwritable_outputs_name_the_path(tmp_path, monkeypatch, check, target, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "d").mkdir()
    with pytest.raises(ConfigError, match="^--output ") as info:
        check(target, "--output")
    assert message in str(info.value) and target in str(info.value)
