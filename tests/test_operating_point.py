"""The operating point a fixed lambda names: the latents' step and the backbone's depth it is stored at."""

import math

from neofield import operating_point
from neofield.latent_rate import LATENT_STEP


def test_a_pictures_latents_at_a_low_fixed_lambda_are_fitted_at_a_finer_step_where_each_gets_more_bits():
    def step(lam, per_point=0.17, kind="video"):
        return operating_point.fixed_step(kind, lam, per_point)

    steps = [step(lam) for lam in (0.3, operating_point.DEFAULT_LAMBDAS["video"], 0.03, 0.01, 0.003, 1e-9)]
    assert steps[:2] == [LATENT_STEP] * 2  # the default lambda and above: the step as before
    assert all(a > b for a, b in zip(steps[1:], steps[2:]))  # finer as lambda falls ...
    assert steps[-1] == LATENT_STEP / 16  # ... down to a floor
    assert 0.13 < steps[3] < 0.15 and 0.09 < steps[4] < 0.11  # the steps measured best on the 120 s field
    assert steps[4] == float(f"{steps[4]:.4g}")  # as the metadata holds it
    assert step(0.003, per_point=0.46) == LATENT_STEP  # a larger field: fewer bits a latent, the coarse step
    assert step(0.003, per_point=0.3) > steps[4]
    assert step(0.035, per_point=0.02) > 0.19  # a field of few latents: no jump below the default's lambdas ...
    assert step(0.003, per_point=0.02) == step(0.003, per_point=0.05) > 0.09  # ... nor finer than the field measured
    assert step(0.003, kind="image") == steps[4]
    assert {step(0.003, kind=kind) for kind in ("audio", "audiovisual")} == {operating_point.FIXED_STEPS["audio"],
                                                                              LATENT_STEP}
    fixed_step = operating_point.fixed_step
    assert fixed_step("video") == fixed_step("video", 0.003) == LATENT_STEP  # no field named


def test_a_pictures_backbone_is_stored_finer_where_the_bytes_lambda_spends_can_pay_for_it():
    bikes = 320 * 136 * 50  # 2 s of bikes at 320x136: the points the rule was measured on

    def depth(lam, points=bikes, kind="video", weights=633):
        return operating_point.backbone_bits(kind, lam, points, weights, 6.0)

    assert depth(0.003) == depth(0.03) == operating_point.FINE_BACKBONE_BITS == 8.0  # tens of KB: 2 bits a weight pay
    assert depth(0.3) == 6.0  # ~5 KB: 8 bits cost 3 % more bytes for 0.03 dB there
    assert depth(0.3, points=40 * bikes) == 8.0  # the same lambda over a longer, larger clip spends more
    assert depth(0.003, points=96 * 64 * 25) == 6.0  # a small clip's few bytes keep the default
    assert depth(0.03, weights=100 * 633) == 6.0  # a backbone too large for the bytes
    # the points where 2 bits more a weight are the share named of the bits lambda is expected to spend
    share = operating_point.FINE_BACKBONE_SHARES["video"]
    edge = 2 * 633 / (share * operating_point.expected_bits_per_point(0.03))
    assert depth(0.03, points=math.ceil(1.01 * edge)) == 8.0 and depth(0.03, points=int(0.99 * edge)) == 6.0
    assert depth(0.003, kind="audio") == 6.0 and depth(None) == depth(0.0) == 6.0  # sound alone: unmeasured
    assert depth(0.003, kind="image") == 8.0


def test_a_video_with_sound_stores_its_backbone_finer_only_at_the_top_of_its_curve():
    bbb = 320 * 180 * 25 + 48_000  # 1 s of Big Buck Bunny at 320x180 with its sound: the points it was measured on

    def depth(lam, points=bbb):
        return operating_point.backbone_bits("audiovisual", lam, points, 2_713, 6.0)  # its layer: 8 hidden tokens

    assert depth(0.005) == 8.0  # +0.24 to +0.43 dB for 0.9 % more bytes
    assert depth(0.02) == depth(0.08) == depth(operating_point.default_lambda("audiovisual")) == 6.0  # bytes for ~0
    assert depth(0.02, points=4 * bbb) == 8.0  # four seconds of it spend 4x the bytes on the same layer
    # a picture's share would keep 6 bits where the video with sound gained: its own share is larger
    assert operating_point.backbone_bits("video", 0.005, bbb, 2_713, 6.0) == 6.0
