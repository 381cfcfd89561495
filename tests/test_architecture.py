"""The core's parts and what each may import (docs/architecture.md), and the one public surface
plugin authors import from."""

import ast
import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from esc50.cli.skeleton import write_skeleton

ROOT = Path(__file__).resolve().parents[1]
# Lowest first: a part of the core imports only from the parts before it (and itself).
PARTS = ["cpu_threads", "errors", "convert", "files", "config", "plugin_api", "data", "results", "training"]
# The floors of the package, lowest first: each imports only from the floors below it (and
# itself).
FLOORS = ["core", "commands", "cli"]
MAX_MODULE_LINES, MAX_CLASS_LINES = 400, 200
MOVED = {"esc50.core.hookspecs": "esc50.core.plugin_api.hookspecs",
         "esc50.core.contracts": "esc50.core.plugin_api.contracts",
         "esc50.core.registry": "esc50.core.plugin_api.registry",
         "esc50.core.dataset": "esc50.core.data.clips",
         "esc50.core.loggers": "esc50.core.plugin_api.contracts"}


def core_part(module: str) -> str | None:
    bits = module.split(".")
    return bits[2] if bits[:2] == ["esc50", "core"] and len(bits) > 2 else None


def imports(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node, node.module))
            if node.module == "esc50.core":
                found += [(node, f"esc50.core.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node, alias.name) for alias in node.names]
    return found


def test_core_parts_import_only_downwards_and_never_inside_a_function():
    problems = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        part = path.relative_to(ROOT / "core").parts[0].removesuffix(".py")
        if part not in PARTS:
            continue
        tree = ast.parse(path.read_text())
        for _, module in imports(tree):
            other = core_part(module)
            if other in PARTS and PARTS.index(other) > PARTS.index(part):
                problems.append(f"{path.relative_to(ROOT)} ({part}) imports {module} ({other})")
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                problems += [f"{path.relative_to(ROOT)}:{node.lineno} imports {module} inside "
                             f"{function.name}" for node, module in imports(function)
                             if module.startswith("esc50")]
    assert problems == []


def floor(module: str) -> str | None:
    bits = module.split(".")
    return bits[1] if bits[0] == "esc50" and len(bits) > 1 and bits[1] in FLOORS else None


def test_the_floors_import_only_downwards():
    """core/ (the dataset, collator, sampler, trainer, results, plugin API, config, files)
    imports nothing of the operations (commands/) or the command line (cli/), and the
    operations nothing of the command line."""
    problems = []
    for name in FLOORS:
        for path in sorted((ROOT / name).rglob("*.py")):
            for _, module in imports(ast.parse(path.read_text())):
                other = floor(module)
                if other is not None and FLOORS.index(other) > FLOORS.index(name):
                    problems.append(f"{path.relative_to(ROOT)} ({name}) imports {module}")
    assert problems == []


def test_no_module_of_core_or_cli_is_too_long_and_no_class_of_core():
    long = []
    for name in ("core", "cli"):
        for path in sorted((ROOT / name).rglob("*.py")):
            text = path.read_text()
            if text.count("\n") > MAX_MODULE_LINES:
                long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
            if name == "core":
                long += [f"{path.relative_to(ROOT)}: class {node.name}: "
                         f"{node.end_lineno - node.lineno + 1} lines"
                         for node in ast.walk(ast.parse(text)) if isinstance(node, ast.ClassDef)
                         and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES]
    assert long == []


def test_every_core_module_belongs_to_a_part_or_is_a_kept_old_path():
    top = sorted(p.stem for p in (ROOT / "core").glob("*.py") if p.stem != "__init__")
    assert top == sorted(["cpu_threads", "errors", "convert", "config", "moved",
                          *[m.rsplit(".", 1)[1] for m in MOVED]])
    folders = sorted(p.name for p in (ROOT / "core").iterdir()
                     if p.is_dir() and (p / "__init__.py").is_file())
    assert folders == sorted(set(PARTS) - {"cpu_threads", "errors", "convert", "config"})


def public_imports(text: str) -> list[str]:
    return [module for _, module in imports(ast.parse(text)) if module.startswith("esc50")]


def test_the_example_package_the_skeleton_and_the_docs_import_only_from_esc50(tmp_path):
    sources = [p.read_text() for p in (ROOT / "examples" / "esc50-ast").rglob("*.py")
               if "build" not in p.parts]
    root = write_skeleton("mytools", tmp_path)
    sources += [p.read_text() for p in root.rglob("*.py")]
    docs = (ROOT / "docs" / "plugins.md").read_text()
    sources += re.findall(r"```python\n(.*?)```", docs, flags=re.S)
    used = {module for text in sources for module in public_imports(text)}
    assert used and used <= {"esc50"}, used - {"esc50"}


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_import_path_still_works_and_warns_naming_the_new_place(old):
    code = (f"import warnings\nwarnings.simplefilter('always')\n"
            f"with warnings.catch_warnings(record=True) as caught:\n"
            f"    import {old}\n"
            f"print([str(w.message) for w in caught if w.category is DeprecationWarning])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert f"{old} is deprecated since esc50 0.3 and goes away in esc50 0.5: import its names " \
        "from esc50 itself" in \
        done.stdout and MOVED[old] in done.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old_module, new_module = importlib.import_module(old), importlib.import_module(MOVED[old])
    shared = [n for n in vars(new_module) if not n.startswith("_") and hasattr(old_module, n)]
    assert shared and all(getattr(old_module, n) is getattr(new_module, n) for n in shared)


def test_every_public_name_is_importable_from_esc50():
    import esc50

    missing = [name for name in esc50.__all__ if not hasattr(esc50, name)]
    assert missing == []


def test_every_name_the_docs_give_imports():
    """Every dotted name under ``esc50`` that README.md and docs/ give (``esc50.load``,
    ``esc50.core.plugin_api.contracts.Randomness``, ``esc50.commands.api``, ...) is there:
    moving code never breaks a documented path."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    names = sorted({name.rstrip(".") for path in texts
                    for name in re.findall(r"`(esc50(?:\.[A-Za-z_]\w*)+)", path.read_text())})
    assert len(names) > 20
    missing = []
    for name in names:
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    found = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attribute in parts[cut:]:
                    found = getattr(found, attribute)
            except AttributeError:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert missing == []
