"""`embalg info` and the CLI frame."""
import json
import subprocess
import sys

from embalg.cli import main


def test_info_json_lists_backends_with_reasons(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backends"]["numpy"]["available"] is True
    assert info["backends"]["numba"]["available"] is True
    cuda = info["backends"]["cuda"]
    assert isinstance(cuda["available"], bool) and cuda["detail"]
    assert info["cpu_count"] >= 1 and info["blas"]


def test_info_text(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backends:" in out and "numba" in out and "BLAS" in out


def test_entry_point_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "embalg", "--version"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("embalg ")


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
