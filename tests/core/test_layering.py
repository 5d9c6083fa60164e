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
