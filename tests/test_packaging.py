"""ragroute installs as ONE import package and works inside a host project that has its own `tools`/`agent`.

The repository keeps the user's folders (agent/ nodes/ tools/ prompts/ evals/), but setuptools'
package-dir maps them to `ragroute`, `ragroute.nodes`, ... Checked for both ways of installing: the
editable install these tests run under, and a wheel built from this checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A host application as users have them: its own top-level `tools.py` and `agent/` package.
HOST_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import agent, tools                      # the host's own modules, not ours
    assert tools.HOST == "tools", tools.__file__
    assert agent.HOST == "agent", agent.__file__

    import ragroute
    from ragroute.tools.ingest import ingest_paths
    from ragroute.tools.loaders import sample_corpus_dir

    index_dir = sys.argv[1]
    index = ragroute.open_index(index_dir)
    ingest_paths(index, [str(sample_corpus_dir())], progress=False)
    index.close()
    out = ragroute.ask("How long can an API token live?", index_dir=index_dir, cache=False)
    print(json.dumps({
        "ragroute": ragroute.__file__,
        "tools": tools.__file__,
        "answer": out["answer"],
        "citations": [c["doc_id"] for c in out["citations"]],
        "modules": sorted({m.split(".")[0] for m in sys.modules
                           if m.split(".")[0] in ("nodes", "prompts", "evals", "studio")}),
    }))
    """
)


def _host_project(tmp_path: Path) -> Path:
    host = tmp_path / "host"
    (host / "agent").mkdir(parents=True)
    (host / "agent" / "__init__.py").write_text('HOST = "agent"\n')
    (host / "tools.py").write_text('HOST = "tools"\n')
    (host / "app.py").write_text(HOST_SCRIPT)
    return host


def _run_host(host: Path, tmp_path: Path, env_extra: dict[str, str] | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"HF_HUB_OFFLINE": "1", "RAGROUTE_CACHE": "0", **(env_extra or {})})
    proc = subprocess.run(
        [sys.executable, "app.py", str(tmp_path / "index")],
        cwd=host,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_host_project_with_its_own_tools_and_agent_runs_ragroute(tmp_path: Path) -> None:
    host = _host_project(tmp_path)
    out = _run_host(host, tmp_path)
    assert out["tools"].startswith(str(host))  # the host keeps its own `tools`
    assert out["ragroute"].startswith(str(ROOT))  # editable install: our checkout
    assert out["citations"], out
    assert "authentication.md" in " ".join(out["citations"])
    assert out["modules"] == []  # nothing of ours under a generic top-level name


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # build from a copy of the checkout's files: setuptools reuses a build/ folder, which would carry
    # modules deleted since into the wheel
    src = tmp_path_factory.mktemp("src")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for rel in listed:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("ragroute-*.whl")
    return found


def test_wheel_holds_only_the_ragroute_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"ragroute", next(t for t in top if t.endswith(".dist-info"))}, top
    for needed in (
        "ragroute/__init__.py",
        "ragroute/workflow.py",
        "ragroute/runtime/providers.py",
        "ragroute/nodes/classify.py",
        "ragroute/tools/errors.py",
        "ragroute/prompts/generate.py",
        "ragroute/evals/prices.json",
        "ragroute/sample_corpus/authentication.md",
    ):
        assert needed in names, needed
    assert not [n for n in names if "/tests/" in n or n.startswith("tests/")]
    # every package folder of the checkout is in the wheel (a new subpackage missing from pyproject's
    # `packages` list would install a `ragroute` that fails to import it)
    folders = {
        "agent": "ragroute",
        "nodes": "ragroute/nodes",
        "tools": "ragroute/tools",
        "prompts": "ragroute/prompts",
        "evals": "ragroute/evals",
    }
    for folder, installed in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.relative_to(ROOT / folder).as_posix()
            assert f"{installed}/{rel}" in names, f"{folder}/{rel} is not in the wheel: add it to `packages`"
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "ragroute = ragroute.cli:main" in entry


def test_wheel_install_runs_from_a_host_project(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info")) in (
        ["ragroute"],
        ["bin", "ragroute"],
    )
    host = _host_project(tmp_path)
    # PYTHONPATH comes before the editable install's finder, so the wheel's copy is the one imported
    out = _run_host(host, tmp_path, {"PYTHONPATH": str(target)})
    assert out["ragroute"].startswith(str(target))
    assert out["tools"].startswith(str(host))
    assert "authentication.md" in " ".join(out["citations"])


def test_public_api_names_resolve_lazily() -> None:
    code = (
        "import sys, ragroute\n"
        "assert 'ragroute.workflow' not in sys.modules and 'chromadb' not in sys.modules\n"
        "assert sorted(ragroute._EXPORTS) == sorted(set(ragroute.__all__) - {'__version__'})\n"
        "from langgraph.graph.state import CompiledStateGraph\n"
        "assert isinstance(ragroute.graph, CompiledStateGraph)\n"
        "assert ragroute.build_graph().compile() is not None\n"
        "assert issubclass(ragroute.ConfigError, ragroute.RagrouteError)\n"
        "try:\n    ragroute.no_such_name\nexcept AttributeError as e:\n    assert 'no_such_name' in str(e)\n"
        "else:\n    raise SystemExit('missing AttributeError')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


# Modules only the extras install (checked against a core-only `pip install -e .`): the core path must not
# need them. A plain install (README command 1) failed once because the graph's steps imported an extra's
# package at module level.
EXTRA_ONLY = (
    "langserve fastapi sse_starlette multipart fastapi_offline langgraph_cli langgraph_api langchain_openai "
    "matplotlib cryptography mcp langchain_mcp_adapters pymilvus milvus_lite"
).split()

CORE_PATH_SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    BLOCKED = set(sys.argv[1].split(","))

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} belongs to an extra")
            return None

    sys.meta_path.insert(0, Block())
    import ragroute, ragroute.api, ragroute.cli, ragroute.workflow, ragroute.tools.index
    import ragroute.nodes, ragroute.runtime, ragroute.tools
    for pkg in (ragroute.nodes, ragroute.runtime):
        for mod in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"{pkg.__name__}.{mod.name}")
    ragroute.build_graph().compile()
    ragroute.cli.build_parser().parse_args(["stats"])
    print("ok")
    """
)


def test_core_path_imports_without_any_extra(tmp_path: Path) -> None:
    script = tmp_path / "core_path.py"
    script.write_text(CORE_PATH_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), ",".join(EXTRA_ONLY)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
