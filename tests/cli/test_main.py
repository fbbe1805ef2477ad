from __future__ import annotations

import subprocess
import sys

import pytest

from cvpipe.cli.main import VERBS, main


def test_top_level_help_lists_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "import" in out and "cvpipe VERB --help" in out


def test_no_args_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2


def test_unknown_verb_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["imprt"]) == 2
    assert "did you mean 'import'" in capsys.readouterr().err


def test_every_available_verb_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    for name, module, _ in VERBS:
        if importlib.util.find_spec(f"cvpipe.cli.{module}") is None:
            continue
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert f"cvpipe {name}" in out and "examples:" in out, name


def test_console_script_starts_without_torch() -> None:
    code = "import sys; from cvpipe.cli.main import main; main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("False")
