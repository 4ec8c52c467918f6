"""Writing files so that a crash never leaves half a file where a whole one is expected."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", suffix: str = ".tmp") -> Iterator[IO]:
    """Yield a temporary file beside `path`; it replaces `path` only once writing succeeded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(mode, dir=path.parent, suffix=suffix, delete=False) as tmp:
        try:
            yield tmp
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp.name, 0o666 & ~umask)  # temporary files are private (0600); the result is a normal file
    os.replace(tmp.name, path)


def write_json_atomic(path: str | Path, data: dict) -> None:
    with atomic_write(path, "w", ".json") as file:
        json.dump(data, file, indent=1)
