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


# -- the README's command-line sections say what the commands do ------------------------


def _section(text: str, title: str, next_title: str) -> str:
    start = text.index("\n%s\n%s\n" % (title, "-" * len(title)))
    return text[start : text.index("\n%s\n%s\n" % (next_title, "-" * len(next_title)), start)]


def _options(command: str) -> "list[list[str]]":
    """The option strings of each documented option of a command (e.g. ``["-q", "--quiet"]``)."""
    import argparse

    import yaxmpp.cli

    parser = yaxmpp.cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [
        list(action.option_strings)
        for action in sub.choices[command]._actions
        if action.option_strings and action.help is not argparse.SUPPRESS and "--help" not in action.option_strings
    ]


def _cli_text() -> str:
    text = _readme()
    return _section(text, "Command line", "Errors") + _section(text, "Getting a token", "The client")


@pytest.mark.parametrize("command", ["watch", "login", "doctor"])
def test_every_option_of_the_commands_is_in_the_readme(command: str) -> None:
    text = _cli_text()
    missing = [
        flags
        for flags in _options(command)
        if not any(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), text) for flag in flags)
    ]
    assert not missing, "%s options the README does not mention: %s" % (command, missing)


def test_every_flag_the_readme_names_for_the_commands_exists() -> None:
    text = _cli_text()
    known = {flag for command in ("watch", "login", "doctor") for flags in _options(command) for flag in flags}
    known |= {"--version", "--help", "--now", "--since"}  # yaxmpp's own; systemctl's and journalctl's
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", text))
    assert not named - known, "the README names flags no command has: %s" % sorted(named - known)


def test_the_exec_variables_in_the_readme_are_the_ones_set() -> None:
    from yaxmpp.cli.execute import event_environment
    from yaxmpp.cli.login import SECRET_ENV

    change = {"event": "change", "type": "new", "path": "/disk/a", "disk_path": "/a", "fid": "1", "size": 2}
    resync = {"event": "resync", "since": 1.0, "until": 2.0, "reason": "lost"}
    set_ = set(event_environment(change)) | set(event_environment(resync)) | {"YAXMPP_COUNT", SECRET_ENV}
    named = set(re.findall(r"YAXMPP_[A-Z_]*[A-Z]", _readme()))
    assert named == set_, (sorted(named - set_), sorted(set_ - named))


def test_the_json_keys_in_the_readme_are_the_records_keys() -> None:
    from yaxmpp.cli.events import CHANGE_KEYS

    text = _section(_readme(), "Command line", "Run it as a service")
    table = text[text.index("JSON output") : text.index("Filters\n")]
    for key in CHANGE_KEYS:
        if key != "event":
            assert "``%s``" % key in table, key
    for key in ("since", "until", "reason", "revision_changed", "revision", "previous_revision"):
        assert "``%s``" % key in table, key
