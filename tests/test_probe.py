"""The fit's loss and the PSNR probe: each point scored on its own modality, a video with sound by its pictures."""

import math

import numpy as np
import torch
from torch import nn

from neofield.media import Media
from neofield.probe import PsnrProbe, masked_mse, mse_to_psnr
from neofield.signal import Signal
from tests.conftest import noise_video


def test_masked_mse_scores_each_point_on_its_own_modality_only():
    pred = torch.tensor([[1.0, 1.0, 1.0, 9.0], [9.0, 9.0, 9.0, 0.5]])
    target = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    # video point: error 1 on each of 3 channels; audio point: 0.25 on its one channel
    assert math.isclose(masked_mse(pred, target, mask).item(), (3 * 1.0 + 0.25) / 4)


def test_psnr_has_a_peak_to_peak_of_two_and_is_infinite_without_error():
    assert mse_to_psnr(4.0) == 0.0 and mse_to_psnr(4e-4) == 40.0 and mse_to_psnr(0.0) == math.inf


class Zeros(nn.Module):
    """A field that predicts 0 everywhere (a parameter only to say where it lives)."""

    def __init__(self, outputs: int):
        super().__init__()
        self.outputs, self.anchor = outputs, nn.Parameter(torch.zeros(()))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return coords.new_zeros(len(coords), self.outputs)


def test_a_probe_scores_a_video_with_sound_by_its_pictures_alone():
    rng = np.random.default_rng(0)
    sound = (rng.standard_normal((4_000, 1)) * 0.5).astype(np.float32)  # loud: it would dominate a joint score
    signal = Signal(Media(video=noise_video(4, 6, 8), fps=10.0, audio=sound, sample_rate=10_000))
    probe = PsnrProbe(signal, points=signal.n_points)
    assert len(probe.mask) > 0 and bool(probe.mask[:, :3].all()) and not bool(probe.mask[:, 3:].any())
    pictures_only = mse_to_psnr(float((probe.target[:, :3] ** 2).mean()))
    assert math.isclose(probe(Zeros(signal.out_features)), pictures_only, rel_tol=1e-6)
