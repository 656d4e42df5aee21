"""Writing pictures: one still, or every frame as a numbered picture sequence (``frames/%05d.png``),
moved into place only once every picture is written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from ..errors import NeofieldError
from .types import IMAGE_SUFFIXES
from .types import first_line as _first_line


def write_image(path: Path, image: np.ndarray) -> None:
    """Write one RGB frame; the format follows the suffix (png is lossless)."""
    iio.imwrite(path, image, extension=path.suffix.lower())


SEQUENCE_FIELD = re.compile(r"%(0\d+)?d")  # printf's %d or %05d, nothing else


def write_image_sequence(pattern: str, frames: Iterable[np.ndarray], *, force: bool = False,
                         frames_total: int | None = None) -> list[Path]:
    """Write frames as numbered pictures, ``frames/%05d.png`` style, numbered from 0.

    All-or-nothing like every other output: the pictures are written into a
    temporary folder beside the target and moved into place only once all of
    them are made; existing files are refused unless ``force``.
    """
    target = Path(pattern)
    if len(SEQUENCE_FIELD.findall(target.name)) != 1 or target.name.count("%") != 1:
        raise NeofieldError(f"{pattern!r} needs exactly one frame-number field such as %05d")
    if target.suffix.lower() not in IMAGE_SUFFIXES:
        raise NeofieldError(f"{pattern!r}: pictures are written as {', '.join(sorted(IMAGE_SUFFIXES))}")
    width = SEQUENCE_FIELD.search(target.name)[1]
    if width and int(width) > 12:  # %0999999d would name each picture with a million digits
        raise NeofieldError(f"{pattern[:60]!r}: a frame number of at most 12 digits (%012d)")
    folder = target.parent
    if not folder.is_dir():
        raise NeofieldError(f"output folder {folder} does not exist")

    def name(i: int) -> str:
        return target.name % i

    if frames_total is not None and not force:
        for i in range(frames_total):
            if (folder / name(i)).exists():
                raise NeofieldError(f"{folder / name(i)} already exists (pass --force to overwrite it)")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.stem.split('%')[0] or 'frames'}.", dir=folder))
    try:
        written = []
        for i, frame in enumerate(frames):
            if not force and (folder / name(i)).exists():
                raise NeofieldError(f"{folder / name(i)} already exists (pass --force to overwrite it)")
            write_image(staging / name(i), frame)
            written.append(name(i))
        paths = []
        try:
            for n in written:
                os.replace(staging / n, folder / n)
                paths.append(folder / n)
        except OSError as exc:
            if not force:  # the ones already moved were new: take them back out
                for moved in paths:
                    moved.unlink(missing_ok=True)
            raise NeofieldError(f"cannot move the pictures into {folder} ({_first_line(exc)})") from None
        return paths
    finally:
        shutil.rmtree(staging, ignore_errors=True)
