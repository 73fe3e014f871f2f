"""The `tracker` command, in-process through click's runner with settings in the environment.

One test runs the installed console script as a subprocess, as a user would.
"""

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tracker.cli import cli

ADMIN_COMMANDS = [
    [], ["migrate"], ["serve"], ["sites"], ["sites", "add"], ["sites", "list"],
    ["sites", "delete"], ["users"], ["users", "add"], ["users", "list"],
    ["users", "password"], ["users", "disable-2fa"], ["users", "require-2fa"],
    ["users", "admin"], ["users", "delete"], ["apikeys"],
    ["apikeys", "create"], ["apikeys", "list"], ["apikeys", "revoke"], ["demo"], ["reclassify"],
    ["goals"], ["goals", "add"], ["goals", "list"], ["goals", "delete"], ["funnels"],
    ["funnels", "add"], ["funnels", "list"], ["funnels", "delete"], ["annotations"],
    ["annotations", "add"], ["annotations", "list"], ["annotations", "delete"], ["invite"],
    ["budgets"], ["budgets", "set"], ["budgets", "list"], ["budgets", "delete"], ["costs"],
    ["costs", "import"], ["costs", "list"], ["costs", "delete"], ["columnar"],
    ["columnar", "rebuild"], ["columnar", "status"], ["email"], ["email", "test"], ["export"],
    ["export", "events"], ["export", "visits"], ["import"], ["import", "events"],
    ["import", "logs"], ["jobs"], ["jobs", "list"], ["jobs", "run"], ["spam"],
    ["spam", "update"],
]  # fmt: skip


class Outcome:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(args, env, input=None):
    result = CliRunner().invoke(cli, args, env=env, input=input, prog_name="tracker")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def env(database_url, tmp_path):
    return {
        "TRACKER_DATABASE_URL": database_url,
        "TRACKER_DATA_DIR": str(tmp_path / "data"),
        "TRACKER_CONFIG": None,
    }


@pytest.mark.parametrize("args", ADMIN_COMMANDS, ids=lambda a: " ".join(a) or "tracker")
def test_every_command_has_help(args):
    result = run([*args, "--help"], env={})
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert len(result.stdout.splitlines()) >= 4


def _command_paths(command: click.Command, path: list[str]) -> list[list[str]]:
    subcommands = command.commands if isinstance(command, click.Group) else {}
    return [path] + [
        sub_path
        for name, sub in subcommands.items()
        if not sub.hidden
        for sub_path in _command_paths(sub, [*path, name])
    ]


def test_every_command_has_a_help_row():
    """A new command is added to ADMIN_COMMANDS, so its help is checked too."""
    assert sorted(_command_paths(cli, [])) == sorted(ADMIN_COMMANDS)


def test_site_user_and_key_lifecycle(env):
    assert run(["migrate"], env).returncode == 0
    added = run(["sites", "add", "Example.COM", "--timezone", "Europe/Paris"], env)
    assert added.returncode == 0, added.stderr
    assert 'data-site="example.com"' in added.stdout
    listed = run(["sites", "list"], env).stdout
    assert "example.com" in listed and "Europe/Paris" in listed

    assert (
        run(
            ["users", "add", "Ann@Example.com", "--password", "long enough", "--admin"], env
        ).returncode
        == 0
    )
    assert "ann@example.com" in run(["users", "list"], env).stdout

    key = run(["apikeys", "create", "ann@example.com", "--name", "ci"], env)
    assert key.returncode == 0
    plain = key.stdout.strip()
    assert plain.startswith("trk_") and len(plain) > 30
    keys = run(["apikeys", "list"], env).stdout
    assert plain[:12] in keys and plain not in keys  # only the prefix is shown

    assert run(["sites", "delete", "example.com"], env, input="n\n").returncode == 1
    assert "example.com" in run(["sites", "list"], env).stdout
    assert run(["sites", "delete", "example.com"], env, input="y\n").returncode == 0
    assert "No sites yet" in run(["sites", "list"], env).stdout


def test_users_add_prompts_for_password(env):
    result = run(["users", "add", "bob@example.com"], env, input="s3cret-pass\ns3cret-pass\n")
    assert result.returncode == 0, result.stderr
    assert "bob@example.com" in run(["users", "list"], env).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sites", "add", "not a domain"], "is not a valid domain"),
        (["sites", "add", "ok.example", "--timezone", "Mars/Olympus"], "not a known time zone"),
        (["sites", "delete", "missing.example", "--yes"], "no site 'missing.example'"),
        (["users", "add", "not-an-email", "--password", "long enough"], "not a valid email"),
        (["users", "add", "c@example.com", "--password", "short"], "at least 8 characters"),
        (["apikeys", "create", "nobody@example.com"], "no user with email"),
    ],
)
def test_bad_input_is_one_line_error(env, args, message):
    result = run(args, env)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_duplicates_are_refused(env):
    run(["sites", "add", "dup.example"], env)
    result = run(["sites", "add", "dup.example"], env)
    assert result.returncode == 1 and "already exists" in result.stderr
    run(["users", "add", "d@example.com", "--password", "long enough"], env)
    result = run(["users", "add", "d@example.com", "--password", "long enough"], env)
    assert result.returncode == 1 and "already exists" in result.stderr


@pytest.mark.slow  # a process of its own, importing the whole app (a second of CPU)
def test_console_script_reports_unreachable_database_in_one_line():
    environ = dict(os.environ, TRACKER_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/x")
    # The console script sits beside the interpreter running the tests (the venv's bin/).
    script = Path(sys.executable).parent / "tracker"
    assert script.exists(), f"the tracker console script is not installed at {script}"
    result = subprocess.run(
        [str(script), "sites", "list"], env=environ, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: database unavailable")
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_config_file_is_one_line_error(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("port = 'eighty'\n")
    result = run(["--config", str(config), "sites", "list"], env={})
    assert result.returncode == 1
    assert "setting 'port'" in result.stderr
