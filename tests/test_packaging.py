"""Packaging: the declared dependencies against the imports and the pins, the shipped files, a fast `twi --help`, and
`pip install .` into a fresh environment with `twi reproduce` run from outside any checkout."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

#: Third-party modules the package may import without declaring them, and why.
UNDECLARED_OK = {
    "triton": "CUDA builds of torch bring it; twi_core/models/_triton_wgrad.py is only imported on CUDA",
}


def _requirements(items: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, items)}


def _declared(*extras: str) -> dict[str, Requirement]:
    reqs = _requirements(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        reqs.update(_requirements(PYPROJECT["project"]["optional-dependencies"][extra]))
    return reqs


def _pins() -> dict[str, str]:
    """``requirements.txt`` as {canonical name: exact version}; other lines (comments, ``-e .``) are skipped."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s#]+)\s*(#.*)?", line.strip())
        if match:
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def _third_party_imports(folder: Path) -> dict[str, set[str]]:
    """Top-level modules imported anywhere under ``folder`` (also inside functions: those are import-time needs of the
    code path that runs them), minus the standard library, twi_core and the folder's own modules (tests import each
    other) -> the files that import them."""
    local = {p.stem for p in folder.glob("*.py")} | {"twi_core"}
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _distributions(modules: dict[str, set[str]]) -> dict[str, str]:
    """{module: canonical distribution name} through the installed packages' metadata."""
    providers = importlib.metadata.packages_distributions()
    missing = sorted(m for m in modules if m not in providers and m not in UNDECLARED_OK)
    assert not missing, f"imported but not installed here: {missing} (imported by {[modules[m] for m in missing]})"
    return {m: canonicalize_name(providers[m][0]) for m in modules if m in providers}


# -- dependencies -----------------------------------------------------------------------------------------------------

def test_every_import_of_the_package_is_declared():
    modules = _third_party_imports(ROOT / "twi_core")
    assert {"torch", "numpy", "pooch", "skimage", "torchmetrics"} <= set(modules)  # the scan sees lazy imports too
    declared = _declared(*PYPROJECT["project"]["optional-dependencies"])
    undeclared = {m: sorted(modules[m]) for m, dist in _distributions(modules).items()
                  if dist not in declared and m not in UNDECLARED_OK}
    assert not undeclared, f"add these to pyproject.toml (dependencies or an extra): {undeclared}"


def test_every_import_of_the_tests_is_in_the_core_or_test_dependencies():
    modules = _third_party_imports(ROOT / "tests")
    assert {"pytest", "numpy"} <= set(modules)
    declared = _declared("test")
    undeclared = {m: sorted(modules[m]) for m, dist in _distributions(modules).items() if dist not in declared}
    assert not undeclared, f"add these to the `test` extra of pyproject.toml: {undeclared}"


def test_the_pins_cover_and_satisfy_every_declared_dependency():
    pins = _pins()
    declared = _declared(*PYPROJECT["project"]["optional-dependencies"])
    unpinned = sorted(set(declared) - set(pins))
    assert not unpinned, f"declared in pyproject.toml but not pinned in requirements.txt: {unpinned}"
    violated = {name: (str(req.specifier), pins[name]) for name, req in declared.items()
                if not req.specifier.contains(pins[name], prereleases=True)}
    assert not violated, f"pins outside pyproject's specifiers: {violated}"
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
    assert lines[-1] == "-e .", "requirements.txt must end by installing the package itself"


def test_jupyter_book_stays_on_1x():
    # Jupyter Book 2 reads myst.yml, not _config.yml/_toc.yml: the `book` extra must not let pip pick it.
    spec = _declared("book")["jupyter-book"].specifier
    assert spec.contains(_pins()["jupyter-book"]) and not spec.contains("2.0.0")


# -- shipped files ----------------------------------------------------------------------------------------------------

def test_the_installed_run_notebook_is_the_books():
    packaged = ROOT / "twi_core" / "resources" / "run.ipynb"
    book = ROOT / "book" / "run.ipynb"
    assert packaged.read_bytes() == book.read_bytes(), \
        "twi_core/resources/run.ipynb differs from book/run.ipynb; copy the book's over it"


def test_licences_and_markers_are_present():
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "the twi authors" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert (ROOT / "twi_core" / "py.typed").is_file()
    notices = (ROOT / "book" / "_widgets" / "LICENSES.txt").read_text(encoding="utf-8")
    for vendored in sorted(p.name for p in (ROOT / "book" / "_widgets").glob("*.js") if p.name != "widgets-config.js"):
        assert vendored in notices, f"book/_widgets/{vendored} has no licence notice in LICENSES.txt"
    assert "BSD-3-Clause" in notices and "Permission is hereby granted" in notices


# -- a fast command line ----------------------------------------------------------------------------------------------

HEAVY = ("torch", "numpy", "pandas", "scipy", "matplotlib", "papermill")


@pytest.mark.parametrize("argv", [["--help"], ["reproduce", "--help"], ["aggregate", "--help"], ["--version"]])
def test_help_does_not_import_torch(argv):
    # A fresh interpreter: this test process has torch loaded already.
    probe = ("import json, sys\n"
             "from twi_core.cli import main\n"
             "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as stop:\n    code = stop.code\n"
             f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))\n"
             "print(json.dumps({'code': code, 'heavy': heavy}))\n")
    out = subprocess.run([sys.executable, "-c", probe, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    if argv != ["--version"]:
        assert "usage: twi" in out.stdout


# -- pip install . into a fresh environment ---------------------------------------------------------------------------

def _fresh_venv(where: Path) -> Path:
    """A venv without pip that sees this environment's packages (torch, setuptools, pip) through a ``.pth`` line, so
    installing the package needs no download. A plain path line does not run the ``.pth`` files of that folder, so this
    environment's editable twi_core stays invisible there."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (Path(site) / "twi-test-parent.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")
    return python


def _build_requirements_met() -> bool:
    """Whether this environment already holds what ``[build-system] requires`` asks for (then no download is needed)."""
    for item in PYPROJECT["build-system"]["requires"]:
        req = Requirement(item)
        try:
            if not req.specifier.contains(importlib.metadata.version(req.name), prereleases=True):
                return False
        except importlib.metadata.PackageNotFoundError:
            return False
    return True


#: What pip prints when it cannot reach an index (the only case in which the install test may skip).
_OFFLINE = re.compile(r"Failed to establish a new connection|Temporary failure in name resolution|Network is unreachable"
                      r"|Could not find a version that satisfies the requirement setuptools|No matching distribution")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the venv layout below is POSIX's")
def test_pip_install_then_reproduce_dry_run_outside_a_checkout(tmp_path):
    pytest.importorskip("pip", reason="this environment has no pip to install with")
    # Install from a copy of the sources without book/: the run notebook must come from the package data. pip also
    # builds in the source folder (build/, *.egg-info), which must not land in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "twi_core", src / "twi_core", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    python = _fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(TWI_RUNS_DIR=str(tmp_path / "runs"), TWI_DATA_DIR=str(tmp_path / "data"),
               PIP_DISABLE_PIP_VERSION_CHECK="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    # Build with this environment's setuptools when it is recent enough (no download at all); otherwise pip fetches
    # the build requirements from its index as a user's `pip install .` does.
    offline = _build_requirements_met()
    if offline:
        env["PIP_NO_INDEX"] = "1"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed",
                              *(["--no-build-isolation"] if offline else []), str(src)],
                             env=env, capture_output=True, text=True, timeout=300)
    if install.returncode and not offline and _OFFLINE.search(install.stdout + install.stderr):
        pytest.skip("pip cannot reach an index for the build requirements "
                    f"{PYPROJECT['build-system']['requires']}, and this environment lacks them")
    assert install.returncode == 0, install.stdout + install.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = ("import json, twi_core\nfrom pathlib import Path\nfrom twi_core import reproduce\n"
             "pkg = Path(twi_core.__file__).parent\n"
             "print(json.dumps({'pkg': str(pkg), 'notebook': str(reproduce.default_notebook()),\n"
             "  'typed': (pkg / 'py.typed').is_file(), 'c': sorted(p.name for p in (pkg / 'models').glob('*.c'))}))\n")
    where = subprocess.run([str(python), "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True,
                           timeout=300)
    assert where.returncode == 0, where.stderr
    info = json.loads(where.stdout.strip().splitlines()[-1])
    venv = str(tmp_path / "venv")
    assert info["pkg"].startswith(venv), f"imported the checkout's twi_core, not the installed one: {info['pkg']}"
    assert info["notebook"] == str(Path(info["pkg"]) / "resources" / "run.ipynb")
    assert info["typed"] and "_nwm_cpu.c" in info["c"]
    assert Path(info["notebook"]).read_bytes() == (ROOT / "book" / "run.ipynb").read_bytes()
    licences = list((tmp_path / "venv").rglob("twi_core-*.dist-info/licenses/LICENSE"))
    assert licences and "MIT License" in licences[0].read_text(encoding="utf-8")

    run = subprocess.run([str(tmp_path / "venv" / "bin" / "twi"), "reproduce", "sanity", "--dry-run"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count(" to run\n") == 3 and "tetrominoes-nwm-linear" in run.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # a dry run writes nothing


# -- the environment variables' table in the README -------------------------------------------------------------------

def _env_reads(path: Path) -> set[str]:
    """Literal names of the environment variables a Python file reads: ``os.environ.get("X")``, ``os.getenv("X")``,
    ``os.environ["X"]``, ``"X" in os.environ`` and ``os.environ.setdefault("X", ...)`` (a default for a read)."""
    def is_environ(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or \
            (isinstance(node, ast.Name) and node.id == "environ")

    def literal(node: ast.AST) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and (
                    (func.attr in ("get", "setdefault", "pop") and is_environ(func.value)) or func.attr == "getenv"):
                names.add(literal(node.args[0]))
        elif isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, ast.Load):
            names.add(literal(node.slice))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)) \
                and is_environ(node.comparators[0]):
            names.add(literal(node.left))
    return {n for n in names if n}


def _readme_variables() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def test_every_environment_variable_read_is_in_the_readme():
    read = set()
    for folder in ("twi_core", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= _env_reads(path)
    # CI's script: every TWI_ variable it sets or reads
    read |= set(re.findall(r"\bTWI_[A-Z0-9_]+", (ROOT / ".ci" / "run").read_text(encoding="utf-8")))
    assert {"TWI_PRESET", "TWI_DATA_DIR", "XDG_CACHE_HOME", "TWI_REQUIRE_BROWSER"} <= read  # the scan sees them
    documented = _readme_variables()
    assert not read - documented, f"add these to the README's environment variables: {sorted(read - documented)}"
    assert not documented - read, f"the README documents variables nothing reads: {sorted(documented - read)}"


def test_the_env_scan_sees_each_way_of_reading(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom os import environ\n"
                     "a = os.environ.get('A_VAR')\nb = os.getenv('B_VAR', '1')\nc = os.environ['C_VAR']\n"
                     "d = 'D_VAR' in os.environ\nos.environ.setdefault('E_VAR', 'x')\nf = environ.get('F_VAR')\n"
                     "os.environ['NOT_READ'] = '1'\n", encoding="utf-8")
    assert _env_reads(probe) == {"A_VAR", "B_VAR", "C_VAR", "D_VAR", "E_VAR", "F_VAR"}
