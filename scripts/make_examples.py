"""Cut the example clips shipped in examples/ from ../shared/data."""
import av, numpy as np, soundfile as sf
from fractions import Fraction
from neofield.media import read_media, Selection

def write(path, media, crf="12"):
    with av.open(path, "w") as out:
        v = out.add_stream("libx264", rate=Fraction(25)); v.height, v.width = media.video.shape[1:3]
        v.pix_fmt = "yuv444p"; v.options = {"crf": crf, "preset": "veryslow"}
        a = None
        if media.audio is not None:
            a = out.add_stream("flac", rate=media.sample_rate, layout="5.1")
        for fr in media.video:
            out.mux(v.encode(av.VideoFrame.from_ndarray(fr, format="rgb24")))
        out.mux(v.encode(None))
        if a is not None:
            planar = np.ascontiguousarray(media.audio.T)
            rs = av.AudioResampler(format=a.codec_context.format, layout="5.1", rate=media.sample_rate)
            for s in range(0, planar.shape[1], 1024):
                f = av.AudioFrame.from_ndarray(planar[:, s:s+1024], format="fltp", layout="5.1"); f.sample_rate = media.sample_rate; f.pts = s; f.time_base = Fraction(1, media.sample_rate)
                for g in rs.resample(f): out.mux(a.encode(g))
            for g in rs.resample(None): out.mux(a.encode(g))
            out.mux(a.encode(None))

import sys
import os
m = read_media("../shared/data/bigbuckbunny.mp4", Selection(start=1.0, duration=1.0, resize=(320, 180)))
write("examples/bbb_1s.mp4", m, crf="14")
a = read_media("../shared/data/gt_bach.wav", Selection(duration=2.0))
sf.write("examples/bach_2s.flac", a.audio, a.sample_rate, subtype="PCM_24")
b = read_media("../shared/data/bikes.mp4", Selection(duration=1.0, resize=(160, 68)))
write("examples/bikes_1s.mp4", b, crf="10")
