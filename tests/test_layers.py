"""The layers of DESIGN.md §10, held by import-linter's contracts in
pyproject.toml ([tool.importlinter]): `lint-imports` passes on the package,
and a deliberate violation, an engine module importing loadaction.chaos, on
a copy of it makes it fail naming the broken contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _engine_contract() -> str:
    """The name of the contract that keeps plugins out of the engine, read
    from pyproject.toml so renaming it there needs no edit here."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (name,) = [c["name"] for c in config["tool"]["importlinter"]["contracts"]
               if c["type"] == "forbidden" and c["source_modules"] == ["loadaction.engine"]
               and "loadaction.chaos" in c["forbidden_modules"]]
    return name


ENGINE_CONTRACT = _engine_contract()


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the `loadaction` package under `root`, with `root`'s
    pyproject.toml: that copy first on the path, so it is what gets analysed."""
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_package_keeps_every_layer_contract() -> None:
    proc = lint_imports(ROOT)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "0 broken" in output


def test_an_engine_module_importing_chaos_breaks_the_engine_contract(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "loadaction", copy / "loadaction",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    victim = copy / "loadaction" / "engine" / "state.py"
    victim.write_text(victim.read_text(encoding="utf-8") + "\nimport loadaction.chaos  # noqa\n",
                      encoding="utf-8")
    proc = lint_imports(copy)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert f"{ENGINE_CONTRACT} BROKEN" in " ".join(output.split())  # long names wrap
    assert "loadaction.engine.state -> loadaction.chaos" in output
    # the copy, not the working tree, was analysed
    assert lint_imports(ROOT).returncode == 0
