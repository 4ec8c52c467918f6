import json

import pytest

from model.files import atomic_write, write_json_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    write_json_atomic(tmp_path / "sub" / "data.json", {"a": 1})
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "sub" / "data.json", "w") as file:
        file.write("half a fi")
        raise RuntimeError("crash mid-write")
    assert json.loads((tmp_path / "sub" / "data.json").read_text()) == {"a": 1}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["data.json"]


def test_written_files_get_normal_permissions_not_private_temp_ones(tmp_path):
    import os

    from model.files import atomic_write

    with atomic_write(tmp_path / "out.txt", "w") as file:
        file.write("x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o666 & ~umask
