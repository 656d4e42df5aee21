"""What an encode prints before it fits: the model line says how its pyramids are read."""

import torch

from neofield.codec.build import neogrid_field
from neofield.console import FitDisplay
from neofield.media import Media
from neofield.signal import Signal
from tests.conftest import noise_video


def test_the_model_line_names_the_levels_and_the_taps_of_a_neogrid_field(capsys):
    torch.manual_seed(0)
    signal = Signal(Media(video=noise_video(4, 16, 24), fps=10.0))
    display = FitDisplay(enabled=True, batch_size=512)
    display.on_signal(signal, neogrid_field(signal, 3_000), {"steps": 10})
    display.progress.stop()
    line = next(t for t in capsys.readouterr().err.splitlines() if t.startswith("model"))
    assert "(6 levels, the finest also read at 4 taps)" in line
