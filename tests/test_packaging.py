"""What the wheel and the sdist declare (read from pyproject.toml and MANIFEST.in; a
real build needs the network for its isolated environment, so it is not run here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_license_the_metadata_names_is_shipped():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    for name in PYPROJECT["project"]["license-files"]:
        assert "Apache License" in (ROOT / name).read_text()[:200]


def test_every_folder_with_files_to_ship_is_a_declared_package():
    """A folder of data files (SQL, the web page) that is not in `packages` makes
    setuptools warn, and a future setuptools drop it."""
    packages = set(PYPROJECT["tool"]["setuptools"]["packages"])
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for top in ("otel_threads",):
        for folder in [ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())]:
            if folder.name == "__pycache__" or folder.is_symlink():
                continue
            files = [
                f
                for f in folder.iterdir()
                if f.is_file() and f.suffix not in (".pyc",) and not f.name.endswith(".so")
            ]
            if not files:
                continue
            name = ".".join(folder.relative_to(ROOT).parts)
            assert name in packages, f"{name} holds files but is not a declared package"
            shipped = {f.name for f in files if f.suffix == ".py"}
            patterns = data.get(name, [])
            for f in files:
                if f.suffix != ".py" and f.suffix != ".c":
                    assert any(f.match(p) for p in patterns), f"{f} is not in package-data"
            assert shipped or patterns


def test_the_sdist_carries_what_the_tests_need():
    manifest = (ROOT / "MANIFEST.in").read_text().split()
    for folder in ("tests", "bench", "docs", "examples", ".ci"):
        assert folder in manifest, folder


def test_one_import_root_that_cannot_collide():
    """The wheel installs `otel_threads` alone: no generic top-level name (a `collector`
    package would shadow, or be shadowed by, the user's own)."""
    tops = {p.split(".")[0] for p in PYPROJECT["tool"]["setuptools"]["packages"]}
    assert tops == {"otel_threads"}
    assert "entry-points" not in PYPROJECT["project"]  # the CLI group is one module


def test_collect_and_demo_run_from_a_checkout_without_installed_metadata():
    """`python -m otel_threads.cli` in the source tree lists and loads the collector's
    commands: no entry point is needed."""
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from otel_threads.cli import main; main(sys.argv[2:])",
            str(ROOT),
            "collect",
            "--help",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "--max-ingest-memory" in out.stdout


def test_fakellm_moved_under_testing_and_its_old_name_still_works() -> None:
    from otel_threads.fakellm import FakeLLM as Old
    from otel_threads.testing.fakellm import FakeLLM

    assert Old is FakeLLM
    for module in ("otel_threads.fakellm", "otel_threads.testing.fakellm"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0 and "--port" in done.stdout, done.stderr
