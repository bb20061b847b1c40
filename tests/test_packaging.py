"""What users install: the wheel and the sdist hold everything the package needs at run
time, and the wheel alone, in a fresh virtualenv, runs the seed example.

The rest of the suite runs against the same kind of install: scripts/test.sh installs the
package into .venv with ``pip install .`` (not editable).
"""
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import pytest

import param_search

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "param_search"
RUNTIME_FILES = sorted(str(p.relative_to(SOURCE.parent)) for p in SOURCE.rglob("*")
                       if p.is_file() and (p.suffix in (".py", ".sh") or "templates" in p.parts)
                       and "__pycache__" not in p.parts)


def test_the_suite_runs_against_an_installed_package_not_the_source_tree():
    installed = pathlib.Path(param_search.__file__).resolve()
    assert "site-packages" in installed.parts, installed
    assert SOURCE not in installed.parents
    assert (installed.parent / "wrapper.sh").is_file()
    assert (installed.parent / "queues" / "__init__.py").is_file()


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """The sdist and the wheel, built as `python -m build` builds them (isolated, from the
    package index), with what the build printed."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheel, = out.glob("param_search-*.whl")
    sdist, = out.glob("param_search-*.tar.gz")
    return wheel, sdist, done.stdout + done.stderr


def test_wheel_holds_every_module_the_wrapper_and_the_license(dists):
    wheel, _, _ = dists
    names = zipfile.ZipFile(wheel).namelist()
    missing = [f for f in RUNTIME_FILES if f not in names]
    assert not missing and "param_search/wrapper.sh" in names
    assert "param_search/templates/report.html.j2" in names   # ps.report's page
    assert any(n.endswith("licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: MIT" in metadata
    assert "param-search = param_search.cli:main" in zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()


def test_sdist_holds_every_module_and_the_wrapper(dists):
    _, sdist, _ = dists
    names = tarfile.open(sdist).getnames()
    top = names[0].split("/")[0]
    missing = [f for f in RUNTIME_FILES if f"{top}/src/{f}" not in names]
    assert not missing and f"{top}/LICENSE" in names


def test_the_build_prints_no_deprecation_warning(dists):
    _, _, printed = dists
    assert "Deprecat" not in printed and "deprecat" not in printed, printed[-3000:]


@pytest.mark.slow
def test_the_wheel_in_a_fresh_venv_runs_the_seed_example(dists, tmp_path):
    wheel, _, _ = dists
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)   # else pip takes a source tree on it for the package, installed
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=900, env=env)
    run = tmp_path / "run"
    run.mkdir()
    done = subprocess.run([str(python), str(ROOT / "examples" / "seed_sweep.py"), "local"], cwd=run,
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "saved plot to metrics.png" in done.stdout and (run / "metrics.png").stat().st_size > 10_000
    assert "product  quotient" in done.stdout and "16 new" in done.stderr
    where = subprocess.run([str(python), "-c", "import param_search; print(param_search.__file__)"],
                           capture_output=True, text=True, cwd=run, env=env, check=True).stdout
    assert str(venv) in where
    cli = subprocess.run([str(venv / "bin" / "param-search"), "status", str(run)], capture_output=True,
                         text=True, env=env)
    assert cli.returncode == 0 and "16 jobs: 16 COMPLETED" in cli.stdout
