"""The shape of the package: no import cycle, backends use only public names, a source checkout runs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "wfe"
BACKENDS = ROOT / "backends"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The wfe modules ``path`` imports, anywhere in it (type-checking and function-level imports included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {module for module in found if module in modules and module != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)) is not None:
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)) is not None:
            return found
    return None


def test_no_import_cycle_among_wfe_modules() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(path) for path in files}
    graph = {_module_name(path): _imports(path, modules) for path in files}
    # A package's __init__ re-exports from its modules; importing a module loads its parent
    # packages first, which Python allows. What must not exist is a loop between modules.
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_backends_import_no_private_name_of_wfe() -> None:
    offences = []
    for path in sorted(BACKENDS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            modules: list[str] = []
            names: list[str] = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
                names = [alias.name for alias in node.names]
            for module in modules:
                parts = module.split(".")
                if parts[0] != "wfe":
                    continue
                if any(part.startswith("_") for part in parts[1:]):
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {module}")
                offences.extend(
                    f"{path.relative_to(ROOT)}:{node.lineno} imports {name} from {module}"
                    for name in names if name.startswith("_")
                )
    assert not offences, "\n".join(offences)


SOURCE_CHECKOUT = textwrap.dedent(
    """
    import importlib.metadata, sys

    # As if nothing were installed: no distribution metadata, so no entry points at all.
    def no_entry_points(**params):
        return importlib.metadata.EntryPoints(())
    importlib.metadata.entry_points = no_entry_points

    import wfe
    assert wfe.__file__.startswith(sys.argv[1]), wfe.__file__
    store = wfe.open_store(sys.argv[2])
    digest = store.blobs.put(b"from a plain checkout")
    assert store.blobs.get(digest) == b"from a plain checkout"
    result = wfe.run(sys.argv[3], store=store)
    assert result.manifest.status == "succeeded", result.manifest.status
    print(result.manifest.status)
    """
)


def test_a_plain_source_checkout_opens_a_store_and_runs_the_example(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("WFE_STORE", "WFE_CACHE")}
    env["PYTHONPATH"] = str(ROOT)
    workflow = ROOT / "examples" / "sales" / "workflow.yaml"
    done = subprocess.run(
        [sys.executable, "-c", SOURCE_CHECKOUT, str(PACKAGE), str(tmp_path / "store"), str(workflow)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "succeeded"


def test_a_missing_optional_backend_names_the_extra_to_install() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["wfe_s3"] = None  # as if the s3 extra were not installed
        import wfe
        try:
            wfe.open_store("s3://bucket/prefix")
        except wfe.StoreURLError as exc:
            print(exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("s3 needs the s3 extra: pip install 'wfe[s3]'"), done.stdout


def test_a_plain_source_checkout_knows_the_supabase_filesystem_without_entry_points() -> None:
    script = textwrap.dedent(
        """
        import importlib.metadata
        importlib.metadata.entry_points = lambda **params: importlib.metadata.EntryPoints(())
        import fsspec
        assert "supabase" not in fsspec.available_protocols()
        from wfe.storage import _registry
        fs = _registry.filesystem("supabase", {"url": "http://127.0.0.1:9", "key": "k"})
        print(type(fs).__module__, type(fs).__name__)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["wfe_supabase._fs", "SupabaseFileSystem"]
