"""EncodeOptions: one object from which the flags, the checks, the fingerprint and the fit's config follow."""

import dataclasses

import pytest
from typer.testing import CliRunner

from neofield.codec.options import EncodeOptions, Flag
from neofield.errors import NeofieldError
from neofield.quantize import BitDepths


@pytest.mark.parametrize("kwargs,message", [
    ({"steps": 0}, "--steps must be a whole number >= 1"),
    ({"warmup_steps": -1}, "--warmup must be a whole number >= 0"),
    ({"lr": 50.0}, "--lr 50 is too large"),
    ({"attention": "local"}, "--attention must be linear or softmax"),
    ({"latents": "cubic"}, "--latents must be nearest or linear"),
    ({"arch": "mlp"}, "--arch must be one of neomlp, siren, spder, rffnet"),
    ({"compile_mode": "maybe"}, "--compile must be one of auto, on, off"),
    ({"weights_dtype": "int4"}, "--dtype must be one of quantized"),
    ({"weights_dtype": "float16", "bits": 5.0}, "--bits apply to --dtype quantized"),
    ({"size": "20KB", "target_psnr": 30.0}, "give one target, not --size and --psnr"),
    ({"size": "20KB", "latent_bits": 5.0}, "--size chooses the bit depths itself"),
    ({"bitrate": "fast"}, "--bitrate 'fast' is not a rate"),
    ({"rate_lambda": -0.1}, "--lambda must be >= 0"),
    ({"rate_lambda": 0.02, "size": "20KB"}, "give --lambda or --size, not both"),
    ({"rate_lambda": 0.02, "arch": "grid"}, "--lambda prices the latent pyramids of --arch neogrid, not --arch grid"),
    ({"rate_lambda": 0.02, "weights_dtype": "float16"}, "--lambda needs --dtype quantized"),
    ({"rate_lambda": 0.02, "latent_bits": 4.0}, "--lambda stores the latents at a fixed step"),
    ({"rff_sigma": (1.0, -2.0)}, "--rff-sigma must be > 0"),
    ({"device": "tpu"}, "--device must be auto, cpu, cuda, cuda:N or mps"),
])
def test_a_bad_option_fails_in_one_line_naming_its_flag(kwargs, message):
    with pytest.raises(NeofieldError, match=message):
        EncodeOptions(**kwargs).check()


def test_good_options_check_and_depths_come_from_either_spelling():
    assert EncodeOptions().check() == EncodeOptions()
    assert EncodeOptions(bits=5.0, latent_bits=7.0).depths() == BitDepths(5.0, 7.0)
    assert EncodeOptions(bits=BitDepths(4.0, 6.0)).depths() == BitDepths(4.0, 6.0)
    assert EncodeOptions().depths() is None


def test_keyword_options_replace_fields_and_an_unknown_one_is_a_type_error():
    base = EncodeOptions(steps=5)
    assert EncodeOptions.of(base, seed=3) == EncodeOptions(steps=5, seed=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'step'"):
        EncodeOptions.of(None, step=5)


def test_command_line_text_is_parsed_where_its_flag_says_how():
    options = EncodeOptions.from_flags({"rff_sigma": "1,1,60", "size": "20KB", "steps": 7})
    assert options.rff_sigma == (1.0, 1.0, 60.0) and options.size == "20KB" and options.steps == 7


def test_the_fingerprint_holds_every_option_that_changes_the_fit_by_its_flag():
    options = EncodeOptions(steps=10, bits=BitDepths(5, 7), rff_sigma=(1.0, 2.0, 3.0), device="cpu", force=True)
    fp = options.fingerprint()
    assert fp["--steps"] == 10 and fp["--bits"] == {"backbone": 5, "latents": 7} and fp["--rff-sigma"] == [1, 2, 3]
    fit_flags = {fl.name for _, fl in EncodeOptions.flags() if fl.fit}
    assert set(fp) == fit_flags
    assert not {"--device", "--force", "--resume", "--compile", "--checkpoint-every"} & set(fp)
    assert EncodeOptions(seed=1).fingerprint() != EncodeOptions(seed=2).fingerprint()


def test_every_field_but_the_piece_and_evaluate_is_a_flag_of_encode():
    from neofield.cli import app

    named = {f.name for f, _ in EncodeOptions.flags()}
    assert {f.name for f in dataclasses.fields(EncodeOptions)} - named == {"selection", "evaluate"}
    text = CliRunner().invoke(app, ["encode", "--help"], terminal_width=200).output
    for _, fl in EncodeOptions.flags():
        assert isinstance(fl, Flag) and fl.name in text
    for piece in ("--start", "--duration", "--max-frames", "--resize"):
        assert piece in text


def test_set_fit_takes_the_shared_flags_with_its_own_defaults():
    from neofield.cli import app
    from neofield.sets.cli import SET_FIT_OPTIONS

    text = CliRunner().invoke(app, ["set", "fit", "--help"], terminal_width=200).output
    for _, fl in EncodeOptions.flags(SET_FIT_OPTIONS):
        assert fl.name in text
    assert "Backbone size" in text and "--arch" not in text and "[default: tiny]" in text


def test_budget_is_the_default_only_when_no_stopping_rule_is_given():
    assert EncodeOptions().budget() == {"steps": None, "epochs": 150.0, "time_budget": 300.0, "default": True}
    assert EncodeOptions(arch="neomlp").budget()["epochs"] == 20.0  # the paper's field: its steps cost more
    assert EncodeOptions(time_budget=9.0).budget() == {"steps": None, "epochs": None, "time_budget": 9.0,
                                                       "default": False}


def test_checking_options_imports_no_torch_so_a_bad_one_fails_at_once():
    import subprocess
    import sys

    code = ("import sys; from neofield.codec.options import EncodeOptions\n"
            "EncodeOptions(size='20KB', rff_sigma=(1.0, 1.0, 9.0), device='cpu', arch='neomlp').check()\n"
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_options_of_the_papers_field_are_refused_for_a_latent_grid_field():
    for kwargs, flag in ((dict(segments=4), "--segments"), (dict(attention="softmax"), "--attention"),
                         (dict(rff_sigma=2.0), "--rff-sigma")):
        with pytest.raises(NeofieldError, match=f"{flag} sets the paper's field .--arch neomlp.; --arch neogrid"):
            EncodeOptions(**kwargs).check()
        EncodeOptions(arch="neomlp", **kwargs).check()  # the paper's field takes them
