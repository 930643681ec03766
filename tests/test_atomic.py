"""atomic_write: the destination holds the old content or the new one, never a part."""
import pytest

from geo4g._atomic import atomic_write


def test_success_replaces_the_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with atomic_write(path, "w") as f:
        f.write("new")
        assert path.read_text() == "old", "the destination must not change before the block ends"
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_error_in_the_block_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_write(path) as f:
            f.write(b"half")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_error_before_any_file_existed_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "new.bin") as f:
            f.write(b"x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_bad_mode_and_missing_folder_are_named(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        with atomic_write(tmp_path / "x", "a"):
            pass
    with pytest.raises(FileNotFoundError, match="folder .*missing does not exist"):
        with atomic_write(tmp_path / "missing" / "x"):
            pass
