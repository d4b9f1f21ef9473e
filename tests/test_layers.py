"""The layers of docs/architecture.md hold: no module imports a layer above its own.

Every import counts, lazy ones inside functions included; only imports under
``if TYPE_CHECKING:`` (annotations, never executed) are exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "streamcore"

#: Bottom up; a module may import its own layer and the ones before it.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "io", "exact_json", "drop_log", "duration", "retry", "item_lookup", "_lazy", "stage_options"),
    ("time", "agg"),
    ("state",),
    ("runtime",),
    ("graph",),
    ("operators",),
    ("execution",),
    ("scaleout",),
    ("dataflow",),
    ("testing",),
    ("batch",),
    ("metrics",),
    ("daemon", "__main__"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def layer_of(module: str) -> str | None:
    """``streamcore.runtime.actor`` -> ``runtime``; None for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "streamcore" else None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every ``streamcore`` module imported by ``path`` (line, module), lazy ones included."""
    tree = ast.parse(path.read_text(), str(path))
    exempt = _type_checking_lines(tree)
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if node.lineno in exempt if hasattr(node, "lineno") else False:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # ``from streamcore import runtime`` names a layer too.
            if target == "streamcore":
                found += [(node.lineno, f"streamcore.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("streamcore.")]


def upward_imports() -> list[str]:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = layer_of(module_name(path))
        if here is None:
            continue
        for line, target in imports_of(path):
            there = layer_of(target)
            if there is None or there not in RANK or here not in RANK:
                continue
            if RANK[there] > RANK[here]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {here} imports {target} ({there} is above it)")
    return wrong


def test_every_layer_of_the_package_is_placed() -> None:
    layers = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.name != "__init__.py"}
    layers -= {"__pycache__", "py.typed", "static"}
    assert sorted(layers - RANK.keys()) == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert upward_imports() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    from streamcore.daemon import cli\n", ["streamcore.daemon"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from streamcore.daemon import cli\n", []),
    ],
)
def test_the_checker_sees_lazy_imports_and_skips_type_checking_ones(
    tmp_path: Path, source: str, expected: list[str]
) -> None:
    module = PACKAGE / "runtime" / "_layer_probe.py"
    try:
        module.write_text(source)
        assert [name for _, name in imports_of(module)] == expected
    finally:
        module.unlink()
