"""Cut the example clips in examples/ from the shared test media (run from the repo root).

    python scripts/make_examples.py [SHARED_DATA_DIR]

Videos are re-encoded with H.264 yuv444p at a low CRF; the Big Buck Bunny
sound goes in as FLAC (AAC's encoder delay would shift it against the video).
"""

import sys
from fractions import Fraction
from pathlib import Path

import av
import soundfile as sf

from neofield.media import Selection, mux_audio, read_media

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")


def write(path: str, media, crf: str) -> None:
    with av.open(path, "w") as out:
        v = out.add_stream("libx264", rate=Fraction(25))
        v.height, v.width = media.video.shape[1:3]
        v.pix_fmt, v.options = "yuv444p", {"crf": crf, "preset": "veryslow"}
        a = None
        if media.audio is not None:
            a = out.add_stream("flac", rate=media.sample_rate, layout="5.1")
        for frame in media.video:
            out.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(v.encode(None))
        if a is not None:
            mux_audio(out, a, media.audio, media.sample_rate)


write("examples/bikes_1s.mp4", read_media(DATA / "bikes.mp4", Selection(duration=1.0, resize=(160, 68))), crf="10")
write("examples/bbb_1s.mp4",
      read_media(DATA / "bigbuckbunny.mp4", Selection(start=1.0, duration=1.0, resize=(320, 180))), crf="14")
bach = read_media(DATA / "gt_bach.wav", Selection(duration=2.0))
sf.write("examples/bach_2s.flac", bach.audio, bach.sample_rate, subtype="PCM_24")
