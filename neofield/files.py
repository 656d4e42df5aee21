"""Safe output files: never half-written, never silently overwritten."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import NeofieldError


def check_output(path: Path, force: bool) -> None:
    """Refuse to clobber an existing file unless asked, before any work starts."""
    try:
        if path.is_dir():
            raise NeofieldError(f"{path} is a directory, not an output file")
        if path.exists() and not force:
            raise NeofieldError(f"{path} already exists (pass --force to overwrite it)")
        if not path.parent.exists():
            raise NeofieldError(f"output folder {path.parent} does not exist")
    except OSError as e:  # a name too long for the file system, a path through a file, ...
        raise NeofieldError(f"cannot write {str(path)[:120]!r}: {e.strerror or e}") from None


@contextlib.contextmanager
def atomic_output(path: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only on success.

    The temporary name keeps the extension so that writers which pick a format
    from the suffix (PyAV, soundfile) still do the right thing. On any error the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    check_output(path, force)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
