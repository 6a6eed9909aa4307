"""Atomic writes: a reader never sees a half-written file or folder.

A file is written under a hidden temporary name in the destination's own folder, flushed to
disk (``fsync``) and then moved onto the destination with ``os.replace``, which is atomic on
POSIX and Windows when both names are on the same file system. A folder (a DICOM series) is
filled under a hidden temporary name and renamed into place at the end.

Temporary names start with ``.`` and contain ``.durr-tmp-``, so ``find_scans`` skips them and
a crashed run leaves nothing that looks like a result.

Examples
--------
>>> with atomic_file("out/slice.npy") as f:          # doctest: +SKIP
...     np.save(f, array)
>>> with atomic_folder("out/series") as tmp:          # doctest: +SKIP
...     with atomic_file(tmp / "IM1.dcm") as f: ...
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


def _temp_sibling(path: Path, kind: str = "tmp") -> Path:
    return path.with_name(f".{path.name}.durr-{kind}-{uuid.uuid4().hex[:8]}")


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a binary file that appears at ``path`` only when the block ends without error.

    The parent folder is created if missing. On error the temporary file is removed and
    ``path`` is left as it was (absent, or its previous content).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``path`` when the block ends without error.

    Files written inside should themselves be flushed (``atomic_file`` does it). An existing
    folder at ``path`` is replaced: it is renamed aside, the new one renamed in, and the old
    one deleted, so ``path`` is never a mixture of old and new files (between the two renames
    it is briefly absent). On error the temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    tmp = _temp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        fsync_dir(tmp)
        old = None
        if path.exists():
            old = _temp_sibling(path, "old")
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
