"""core/ depends on nothing above it: importing every core module loads no UI, web or CLI framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_core_never_imports_argparse_itself() -> None:
    # scikit-learn pulls argparse in through unittest, so check the source rather than sys.modules.
    offenders = [p.name for p in (ROOT / "core").glob("*.py") if "import argparse" in p.read_text()]
    assert offenders == []


def test_core_imports_no_streamlit_fastapi_or_plotly() -> None:
    modules = sorted(p.stem for p in (ROOT / "core").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module('core.' + m)\n"
        "bad = sorted(m for m in ('streamlit', 'fastapi', 'starlette', 'uvicorn', 'plotly') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"core pulled in: {out.stdout.strip()}"


# What the dashboard, the API and the CLIs may import from core: the application layer, its values and the
# serialisers. Never the ORM, the registry, history, jobs or training directly: those are the layer's business.
INTERFACE_MAY_IMPORT = {
    "core.modelops",
    "core.constants",
    "core.config",
    "core.errors",
    "core.domain",
    "core.serialize",
    "core.status",
    "core.alerts",
    "core.trends",
    "core.training_run",
    "core.archive",
    "core.storage",
    "core.logs",
    "core.identity",
}


def test_interfaces_call_the_application_layer_not_the_orm_or_the_registry() -> None:
    import ast

    offenders = []
    for folder in ("api", "dashboard", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] if node.module != "core" else [f"core.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                bad = [n for n in names if n.startswith("core.") and n not in INTERFACE_MAY_IMPORT]
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in bad]
    assert offenders == []
