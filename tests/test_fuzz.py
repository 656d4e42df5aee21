"""Untrusted bundles and decode options (issue 12, item 3): benchmarks/fuzz.py's cases must all end
in success or one clean error line. Every failure is listed with the command that reruns it.

benchmarks/ is not a package, so the script is loaded from its path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FUZZ_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz.py"
CASES = 300


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_benchmark", FUZZ_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def test_oracle_flags_what_it_should(fuzz):
    """The oracle itself: a clean error passes; a bug, a hang, a second line or a leftover file does not."""
    def result(**kw):
        base = {"name": "decode", "exit_code": 1, "stdout": "", "stderr": "error: x is corrupted\n", "seconds": 0.1}
        return fuzz.CmdResult(**{**base, **kw})

    assert fuzz.check(result(), limit=5, rss_bound_kb=1 << 20) == []
    assert fuzz.check(result(exit_code=0, stderr=""), limit=5, rss_bound_kb=1 << 20) == []
    assert "exit3" in fuzz.check(result(exit_code=3, stderr="internal error: KeyError: 'x'\n"), 5, 1 << 20)
    assert "multiline-error" in fuzz.check(result(stderr="error: a\nb\n"), 5, 1 << 20)
    assert "hang" in fuzz.check(result(timed_out=True, exit_code=-1), 5, 1 << 20)
    assert "slow" in fuzz.check(result(seconds=6.0), 5, 1 << 20)
    assert "left-files" in fuzz.check(result(left=["out.mp4"]), 5, 1 << 20)
    assert "rss" in fuzz.check(result(rss_growth_kb=2 << 20), 5, 1 << 20)
    assert "alloc" in fuzz.check(result(stderr="error: (DefaultCPUAllocator: can't allocate memory)\n"), 5, 1 << 20)
    assert "uncaught" in fuzz.check(result(exception="PanicException: boom"), 5, 1 << 20)
    assert "control-chars" in fuzz.check(result(exit_code=0, stdout="from \x1b[31mred\n", stderr=""), 5, 1 << 20)


def test_cases_are_deterministic(fuzz):
    assert fuzz.schedule(5) == fuzz.schedule(5)
    assert fuzz.schedule(3, only="bomb", case=2) == [("bomb", 2)]
    kinds = {k for k, _ in fuzz.schedule(CASES)}
    assert kinds == set(fuzz.KINDS)  # every kind gets cases


def test_fuzzed_bundles_and_options_fail_cleanly(fuzz, tmp_path_factory):
    report = fuzz.run(cases=CASES, seed=0, workdir=tmp_path_factory.mktemp("fuzz"), limit=5.0)
    print(report.text())
    assert report.total >= CASES
    assert not report.failures, "\n" + report.text()
