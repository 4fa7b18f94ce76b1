"""The layers point down: import-linter's contracts (pyproject.toml) pass, and no import cycle exists
anywhere in `ragroute`, lazy in-function imports included (TYPE_CHECKING-only imports excluded).

setuptools package-dir spreads the one package over agent/, nodes/, tools/, prompts/ and evals/, and
import-linter (through grimp) finds a package's modules by walking its one folder. So both checks run on
`package_tree`: the same files, linked into the folder layout the installed package has.
Run the contracts by hand with:  .venv/bin/python -m tests.test_architecture
and every check (contracts, cycles, mypy):  .venv/bin/python -m pytest -q tests/test_architecture.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin

# Tarjan's strongly connected components over grimp's graph; prints [[cycle modules...], ...] as JSON
CYCLES = """
import json, grimp
graph = grimp.build_graph("ragroute", exclude_type_checking_imports=True)
index, low, stack, on_stack, cycles = {}, {}, [], set(), []
for root in sorted(graph.modules):
    if root in index:
        continue
    work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
    index[root] = low[root] = len(index)
    stack.append(root); on_stack.add(root)
    while work:
        module, children = work[-1]
        for child in children:
            if child not in index:
                index[child] = low[child] = len(index)
                stack.append(child); on_stack.add(child)
                work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                break
            if child in on_stack:
                low[module] = min(low[module], index[child])
        else:
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop(); on_stack.discard(member); component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    start = min(component)
                    back = [m for m in graph.find_modules_directly_imported_by(start) if m in component]
                    chains = [graph.find_shortest_chain(importer=m, imported=start) for m in back]
                    cycles.append([start, *min((c for c in chains if c), key=len)])
print(json.dumps({"modules": len(graph.modules), "cycles": cycles}))
"""


def package_tree(dest: Path) -> Path:
    """`ragroute` as one folder tree under `dest` (links to the real files), from the package-dir table."""
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):
        target = dest.joinpath(*package.split("."))
        for source in sorted((REPO / folder).rglob("*.py")):
            if "__pycache__" in source.parts:
                continue
            link = target / source.relative_to(REPO / folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(source)
    return dest


def _run(command: list[str], tree: Path) -> subprocess.CompletedProcess[str]:
    """`command` from the repo root with `tree` ahead of the editable install on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_import_linter_contracts_pass(tmp_path: Path) -> None:
    result = _run([str(BIN / "lint-imports"), "--no-cache"], package_tree(tmp_path))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_no_import_cycles_anywhere(tmp_path: Path) -> None:
    result = _run([sys.executable, "-c", CYCLES], package_tree(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    found = json.loads(result.stdout)
    assert found["modules"] > 50  # the whole package was seen, not only agent/
    assert found["cycles"] == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in found["cycles"])


def test_mypy_is_clean_on_the_package(tmp_path: Path) -> None:
    # mypy cannot see through the editable install's import hook either: without the linked tree every
    # `ragroute.*` import would be "missing" and silently typed Any (ignore_missing_imports)
    tree = package_tree(tmp_path / "tree")
    result = subprocess.run(
        [
            str(BIN / "mypy"),
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
        + ["-p", "ragroute"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        done = _run([str(BIN / "lint-imports"), "--no-cache", *sys.argv[1:]], package_tree(Path(folder)))
        print(done.stdout + done.stderr, end="")
        sys.exit(done.returncode)
