"""What a decode writes: from ``-o NAME`` (or ``-o - --format F``) to a kind of output.

The output's name decides the format, as it does for FFmpeg:

* ``.mp4 .mov .mkv .webm .gif``: a video (with sound where the bundle has it
  and the container can hold it; a gif cannot);
* ``.wav .flac .ogg .opus .m4a .mp3``: the sound alone;
* ``.png .jpg …``: one still (``--frame T``, or the picture of an image bundle);
* ``frames/%05d.png``: every frame as a numbered picture, from 0;
* ``-``: standard output, in ``--format`` (default Matroska for pictures, wav for sound).

Everything that can be wrong with that choice is found here, before a
single point is rendered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import NeofieldError
from .media import AUDIO_OUT_SUFFIXES, IMAGE_SUFFIXES, VIDEO_OUT_SUFFIXES

SEQUENCE_FIELD = re.compile(r"%0?\d*d")


@dataclass(frozen=True)
class OutputTarget:
    """Where and as what a decode is written."""

    path: Path  # for stdout: a name whose suffix gives the format
    kind: str  # "video", "audio", "still" or "sequence"
    stdout: bool = False

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower()


def default_output(bundle_path: Path, kind: str, scale: float) -> Path:
    suffix = {"audio": ".wav", "image": ".png"}.get(kind, ".mp4")
    tag = "decoded" if scale == 1 else f"x{scale:g}"
    return bundle_path.with_name(f"{bundle_path.stem}.{tag}{suffix}")


def resolve_target(output: str | Path | None, bundle_path: Path, meta: dict, scale: float = 1.0,
                   format: str | None = None, frame: float | None = None) -> OutputTarget:
    """Check the output against what the bundle holds and the options asked for."""
    outputs = meta["outputs"]
    still_bundle = bool(meta["geometry"].get("video", {}).get("still"))
    stdout = str(output) == "-"
    if format is not None and not stdout:
        raise NeofieldError("--format is for -o - (standard output); elsewhere the file's suffix picks the format")
    if stdout:
        default = "png" if still_bundle or frame is not None else "mkv" if "video" in outputs else "wav"
        path = Path(f"stdout.{(format or default).lower().lstrip('.')}")
    elif output is None:
        path = default_output(bundle_path, meta["modality"], scale)
    else:
        path = Path(output)
    suffix = path.suffix.lower()
    if suffix in VIDEO_OUT_SUFFIXES:
        kind = "video"
    elif suffix in AUDIO_OUT_SUFFIXES:
        kind = "audio"
    elif suffix in IMAGE_SUFFIXES:
        kind = "sequence" if SEQUENCE_FIELD.search(path.name) else "still"
    else:
        known = sorted(VIDEO_OUT_SUFFIXES | AUDIO_OUT_SUFFIXES | IMAGE_SUFFIXES)
        raise NeofieldError(f"cannot write {suffix or 'files without a suffix'}: use one of {', '.join(known)}")
    if kind == "sequence" and stdout:
        raise NeofieldError("a numbered picture sequence cannot go to standard output; give a pattern such as "
                            "frames/%05d.png")
    if kind != "audio" and "video" not in outputs:
        raise NeofieldError(f"{bundle_path} holds sound only: decode it to .wav, .flac, .ogg, .opus, .m4a or .mp3")
    if kind == "audio" and "audio" not in outputs:
        raise NeofieldError(f"{bundle_path} holds no sound: decode it to a video or picture format")
    if frame is not None and kind != "still":
        raise NeofieldError("--frame writes one picture: give an output such as still.png")
    if kind == "still" and frame is None and not still_bundle:
        raise NeofieldError(f"a {suffix} holds one picture: pass --frame SECONDS for one frame, "
                            f"or -o 'frames/%05d{suffix}' for every frame")
    return OutputTarget(path=path, kind=kind, stdout=stdout)
