"""app/ reaches the indexer through its public API only: ruff's banned-api list (pyproject.toml) names every indexer
submodule, so a new one is banned in app/ too, and no module of app/ imports one."""

from __future__ import annotations

import ast
import pkgutil
import tomllib
from pathlib import Path

import indexer

ROOT = Path(__file__).resolve().parents[2]


def _banned() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["ruff"]["lint"]["flake8-tidy-imports"]["banned-api"])


def test_every_indexer_submodule_is_banned_in_app():
    submodules = {f"indexer.{m.name}" for m in pkgutil.iter_modules(indexer.__path__)}
    assert submodules and "indexer.pipeline" in submodules
    assert submodules - _banned() == set()


def test_app_imports_only_the_indexer_package():
    found = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("indexer.")]
    assert found == []
