import subprocess
import sys

import pytest
import torch

from neofield.fields.grid import read_grids
from neofield.fields.layouts import TimeSegments
from neofield.fields.neomlp import NeoMLPField, build_config
from neofield.runtime import autocast, compiled, cpu_has_bf16, flush_denormals, resolve_precision

TINY = 1e-40  # subnormal in float32


def test_flush_denormals_zeroes_subnormals_inside_and_not_after():
    x = torch.tensor([TINY])
    with flush_denormals():
        inside = (x * 1.0).item()
    after = (x * 1.0).item()
    if torch.set_flush_denormal(False):  # the CPU supports the mode: it must have acted
        assert inside == 0.0
    assert after != 0.0


def test_a_nested_block_leaves_the_outer_one_flushing():
    if not torch.set_flush_denormal(False):
        pytest.skip("no FTZ/DAZ on this CPU")
    x = torch.tensor([TINY])
    with flush_denormals():
        with flush_denormals():  # e.g. a probe decode during a fit
            pass
        assert (x * 1.0).item() == 0.0
    assert (x * 1.0).item() != 0.0


def test_auto_precision_is_bfloat16_where_native_and_float32_elsewhere(monkeypatch):
    import neofield.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == "float32"
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == "bfloat16"
    assert resolve_precision("float32", torch.device("cuda")) == "float32"
    assert resolve_precision("auto", torch.device("cuda")) == "bfloat16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("float8", torch.device("cpu"))


def test_bfloat16_path_matches_float32_within_its_precision():
    if not cpu_has_bf16():
        pytest.skip("no native bfloat16 on this CPU")
    torch.manual_seed(0)
    field = NeoMLPField(build_config("tiny", 3, 3), TimeSegments(2, -1, 1)).eval()
    coords = torch.rand(256, 3) * 2 - 1
    with torch.no_grad():
        exact = field(coords)
        with autocast(torch.device("cpu"), "bfloat16"):
            mixed = field(coords).float()
    assert mixed.dtype == torch.float32
    assert (mixed - exact).abs().max() < 0.05 and not torch.equal(mixed, exact)


def test_a_compiled_grid_read_takes_the_thread_count_as_a_constant():
    # torch.get_num_threads() traced inline breaks the graph: fullgraph would raise
    grids = [torch.randn(2, 3, 4, 5)]
    u = torch.rand(2048, 3) * 2 - 1
    read = compiled(lambda g, x: read_grids(g, x)[0], backend="eager", fullgraph=True)
    torch.testing.assert_close(read(grids, u), read_grids(grids, u)[0])


def test_the_codec_imports_no_compiler_until_it_compiles():
    # torch._dynamo costs ~1 s of every command's start, a decode's or a bad option's
    code = ("import sys, neofield.codec.decoder, neofield.codec.encoder, neofield.fit; "
            "print('torch._dynamo' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
