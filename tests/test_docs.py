"""The user's documentation: the README renders as reStructuredText without a warning, starts
with the two setup commands, and points only at files that ship with the repository."""

from __future__ import annotations

import io
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
README = os.path.join(ROOT, "README.rst")


def _readme() -> str:
    with open(README, encoding="utf-8") as f:
        return f.read()


def test_the_readme_renders_without_a_warning():
    docutils_core = pytest.importorskip("docutils.core")
    warnings = io.StringIO()
    docutils_core.publish_string(
        _readme(),
        writer_name="null",
        settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": warnings, "syntax_highlight": "none"},
    )
    assert warnings.getvalue() == ""


def test_the_readme_starts_with_the_demo_and_the_test_command():
    commands = re.findall(r"^\s+(pip install .+|python -m .+)$", _readme()[:3000], re.M)
    joined = "\n".join(commands)
    assert "yaxmpp demo" in joined
    assert ".[test]" in joined and "pytest" in joined


def test_the_readme_points_only_at_files_that_ship():
    text = _readme()
    assert "shared/" not in text  # the maintainers' folder: users do not have it
    for path in re.findall(r"``((?:docs|benchmarks|tests|\.ci)/[\w./-]+)``", text):
        assert os.path.exists(os.path.join(ROOT, path)), path
    assert os.path.exists(os.path.join(ROOT, "LICENSE"))
    assert os.path.exists(os.path.join(ROOT, "docs", "protocol.md"))
