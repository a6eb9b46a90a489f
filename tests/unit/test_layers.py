"""Dependencies point inwards: nothing under switchyard/ imports the outer packages (workers, tasks,
graphs) except the entry points that start processes. Walks every module's imports with ``ast``, so
lazy imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "switchyard"
OUTER = {"workers", "tasks", "graphs"}
ENTRY_POINTS = {"switchyard/cli.py", "switchyard/dev.py"}  # they start processes: on top of everything


def forbidden_imports(source: str, filename: str = "<text>") -> list[str]:
    """``"line: module"`` for each import of an outer package in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{node.lineno}: {n}" for n in names if n.split(".")[0] in OUTER]
    return found


def violations(root: Path) -> dict[str, list[str]]:
    """Forbidden imports of every module under ``root/switchyard``, by path relative to ``root``."""
    found = {}
    for path in sorted((root / "switchyard").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel not in ENTRY_POINTS and (bad := forbidden_imports(path.read_text(), rel)):
            found[rel] = bad
    return found


def test_core_imports_no_outer_package():
    assert violations(ROOT) == {}


def test_checker_fails_on_a_reverse_import(tmp_path):
    core = tmp_path / "switchyard"
    (core / "agents").mkdir(parents=True)
    (core / "cli.py").write_text("from workers.profiles import worker_argv\n")  # an entry point: allowed
    (core / "agents" / "ok.py").write_text("from switchyard.agents.graph_catalog import build_graph\n")
    (core / "dispatch.py").write_text("def send():\n    import workers.app\n    from graphs import build_graph\n")
    (core / "jobs.py").write_text("from tasks._base import job_task\n")
    assert violations(tmp_path) == {"switchyard/dispatch.py": ["2: workers.app", "3: graphs"],
                                    "switchyard/jobs.py": ["1: tasks._base"]}


def test_entry_points_exist():
    # An allowance for a file that is gone would silently widen the rule.
    assert all((ROOT / p).is_file() for p in ENTRY_POINTS)
