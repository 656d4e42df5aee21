"""NeoMLP's architecture settings and the presets: plain data, no torch.

Kept apart from the model so that the command line can list presets (and
print ``--help``) without importing torch, which costs about a second.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

# The names a bundle and the command line give fields and their settings (torch-free, for --help and checks)
ARCHS = ("neomlp", "siren", "spder", "rffnet", "grid", "neogrid")  # model.type
ATTENTIONS = ("linear", "softmax")
ENCODINGS = ("rff", "linear")  # NeoMLP's inputs: random Fourier features, or the paper's ablation without
INTERPOLATIONS = ("nearest", "linear")  # how time segments' latent sets serve a time between their centres


@dataclass(frozen=True)
class NeoMLPConfig:
    """Architecture of a NeoMLP backbone (the signal fixes ``in/out_features``)."""

    dim: int = 64  # token width D
    ffn_dim: int = 256
    heads: int = 4
    layers: int = 3
    rff_dim: int = 512  # cos + sin features per input
    rff_sigma: float | tuple[float, ...] = 20.0  # one value, or one per input
    hidden_tokens: int = 6
    attention: str = "linear"
    in_features: int = 1
    out_features: int = 1
    seed: int = 0  # regenerates the RFF bank
    # "rff": random Fourier features -> Linear (the paper's NeoMLP); "linear": a learned Linear(1, D) of the raw
    # coordinate instead, the paper's "without RFF" ablation (35.92 against 39.06 dB on bikes)
    encoding: str = "rff"

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["encoding"] == "rff":  # the default is left out, so bundles written before the ablation stay byte-identical
            del d["encoding"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NeoMLPConfig:
        d = dict(d)
        if isinstance(d.get("rff_sigma"), list):
            d["rff_sigma"] = tuple(d["rff_sigma"])
        return cls(**d)


@dataclass(frozen=True)
class Preset:
    """A model size plus the settings measured to suit it.

    RFF sigma depends on the axis: pictures (x, y and video time, all in
    [-1, 1]) want low frequencies on a CPU budget, while audio time (200/7
    units per second) needs high ones. An audio-visual field gets the picture
    sigma on x, y and the audio sigma on its shared time axis.
    """

    model: NeoMLPConfig
    lr: float
    warmup_steps: int
    video_sigma: float
    audio_sigma: float
    description: str

    def sigma(self, kind: str) -> float | tuple[float, ...]:
        if kind == "audio":
            return self.audio_sigma
        if kind == "audiovisual":
            return (self.video_sigma, self.video_sigma, self.audio_sigma)
        return self.video_sigma


PRESETS: dict[str, Preset] = {
    # The paper's configurations (Table 7 of arXiv 2412.08731), sigma 20. The
    # paper trains them for thousands of GPU epochs at lr 5e-3 / 5e-4 with no
    # warm-up; on a CPU budget they need a warm-up and the rates below.
    "audio": Preset(NeoMLPConfig(dim=64, ffn_dim=256, heads=4, layers=3, rff_dim=512, hidden_tokens=6),
                    lr=3e-3, warmup_steps=100, video_sigma=20.0, audio_sigma=20.0,
                    description="the paper's audio config (D 64, 3 layers, 8 tokens for mono audio)"),
    "video": Preset(NeoMLPConfig(dim=256, ffn_dim=1024, heads=8, layers=4, rff_dim=128, hidden_tokens=10),
                    lr=5e-4, warmup_steps=200, video_sigma=20.0, audio_sigma=20.0,
                    description="the paper's video config (D 256, 4 layers, 16 tokens for RGB video); a GPU model"),
    # CPU presets (docs/cpu-defaults.md): a few epochs fit in minutes on two cores.
    "small": Preset(NeoMLPConfig(dim=48, ffn_dim=192, heads=4, layers=2, rff_dim=256, hidden_tokens=3),
                    lr=3e-3, warmup_steps=50, video_sigma=1.0, audio_sigma=10.0,
                    description="wider CPU model: more capacity per step, half the steps of tiny"),
    "tiny": Preset(NeoMLPConfig(dim=32, ffn_dim=128, heads=2, layers=2, rff_dim=128, hidden_tokens=2),
                   lr=5e-3, warmup_steps=30, video_sigma=1.0, audio_sigma=10.0,
                   description="CPU default for every kind: fastest per point, best at equal time"),
}


def build_config(preset: str, in_features: int, out_features: int, kind: str | None = None,
                 **overrides) -> NeoMLPConfig:
    """The preset's architecture for a signal with the given in/out sizes.

    ``kind`` (video, image, audio, audiovisual) picks the per-axis RFF sigma;
    without it the preset's picture sigma is used for every input.
    """
    p = PRESETS[preset]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    sigma = p.sigma(kind) if kind else p.video_sigma
    return replace(p.model, in_features=in_features, out_features=out_features,
                   **{"rff_sigma": sigma, **overrides})
