"""tools/path.sh, sourced by every run.sh: it stops when the package does not import, and says why."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import ROOT


def test_a_failing_import_stops_with_pythons_own_error(tmp_path: Path):
    # a python3 whose `import less` fails for a reason of its own (a broken dependency)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(
        "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'lilcom'\" >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LESS_VENV": str(tmp_path / "no_venv")}
    script = f". {ROOT / 'tools' / 'path.sh'}; echo after"
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "after" not in result.stdout
    assert "'less' package is not importable" in result.stderr
    assert "No module named 'lilcom'" in result.stderr


def test_a_working_environment_passes_through(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "python3").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LESS_VENV": str(tmp_path / "no_venv")}
    script = f". {ROOT / 'tools' / 'path.sh'}; echo after $PYTHONUNBUFFERED"
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "after 1"
