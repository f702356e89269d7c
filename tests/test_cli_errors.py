"""User errors of the other command lines (mer_uq.trial_cli, analysis.report, sweep.embed):
one line on stderr, exit 2, no traceback, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Hides the audio extra from the process, as on an install without it.
_NO_AUDIO = "import sys; sys.modules['soundfile'] = None; sys.modules['soxr'] = None; "


def _run(code: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def _main_of(module: str) -> str:
    return f"import sys; from {module} import main; sys.exit(main(sys.argv[1:]))"


def _one_line(proc: subprocess.CompletedProcess[str], expected: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and expected in lines[0], proc.stderr


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--method", "bogus"], "unknown method 'bogus'"),
        (["--method", "nll", "--device", "nonsense"], "is not a torch device"),
        (["--method", "nll", "--device", "mps"], "only cpu and cuda"),
        (["--method", "nll", "--epochs", "0", "--device", "cpu"], "epochs must be > 0"),
        (["--method", "nll", "--features", "none.parquet"], "feature file not found"),
    ],
)
def test_train_cli_user_errors(tmp_path, argv, expected) -> None:
    _one_line(_run(_main_of("mer_uq.trial_cli"), *argv, cwd=tmp_path), expected)


@pytest.mark.skipif("_has_cuda()", reason="the machine has CUDA")
def test_train_cli_cuda_without_cuda(tmp_path) -> None:
    proc = _run(_main_of("mer_uq.trial_cli"), "--method", "nll", "--device", "cuda", cwd=tmp_path)
    _one_line(proc, "--device cuda: this machine has no CUDA GPU")


def test_report_cli_refuses_folders_it_cannot_use(tmp_path) -> None:
    report = _main_of("analysis.report")
    proc = _run(report, str(tmp_path / "missing"), cwd=tmp_path)
    _one_line(proc, "no such folder")
    assert "defaults assumed" not in proc.stderr
    (tmp_path / "empty").mkdir()
    _one_line(_run(report, str(tmp_path / "empty"), cwd=tmp_path), "is not a sweep folder")
    corrupt = tmp_path / "corrupt"
    (corrupt / "trials").mkdir(parents=True)
    (corrupt / "trials" / "nll__seeds0.parquet").write_bytes(b"PAR1")
    _one_line(_run(report, str(corrupt), cwd=tmp_path), "no readable trial file")
    (corrupt / "report").write_text("a file where the report folder goes\n")
    _one_line(_run(report, str(corrupt), cwd=tmp_path), "is a file")
    assert not (tmp_path / "empty" / "report").exists()


def test_embed_help_and_error_without_the_audio_extra(tmp_path) -> None:
    code = _NO_AUDIO + _main_of("sweep.embed")
    helped = _run(code, "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "--audio" in helped.stdout, helped.stderr
    proc = _run(code, "--audio", str(tmp_path), "--checkpoint", "c.pt", "--stats", "s.json",
                "--out", str(tmp_path / "f.parquet"), cwd=tmp_path)
    _one_line(proc, "pip install 'mer-uq[audio]'")
    assert not (tmp_path / "f.parquet").exists()


@pytest.mark.parametrize("parse, text, expected", [
    ("positive", "0", "must be a positive integer, got 0"),
    ("positive", "1.5", "must be an integer, got '1.5'"),
    ("non_negative", "-1", "must be >= 0, got -1"),
    ("non_negative", "x", "must be an integer, got 'x'"),
    ("count2", "1", "must be >= 2, got 1"),
    ("count2", "", "must be an integer, got ''"),
])
def test_shared_argument_types_refuse_in_one_phrase(parse, text, expected) -> None:
    """Every command line's counts come from mer_uq.cli_args: one phrase each, never
    argparse's "invalid <function name> value"."""
    import argparse

    from mer_uq.cli_args import count, non_negative_int, positive_int

    function = {"positive": positive_int, "non_negative": non_negative_int,
                "count2": count(2)}[parse]
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{expected}$"):
        function(text)
    assert positive_int("3") == 3 and non_negative_int("0") == 0 and count(2)("2") == 2
