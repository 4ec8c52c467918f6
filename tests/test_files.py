import json

import pytest

from utils.files import atomic_write, write_json_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    write_json_atomic(tmp_path / "sub" / "data.json", {"a": 1})
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "sub" / "data.json", "w") as file:
        file.write("half a fi")
        raise RuntimeError("crash mid-write")
    assert json.loads((tmp_path / "sub" / "data.json").read_text()) == {"a": 1}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["data.json"]
