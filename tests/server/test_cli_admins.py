"""``tokenward admins`` as an operator runs it: a real process, the password on stdin."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.tokenward_server import TokenwardEnv

PASSWORD = "correct horse battery staple"


def admins(env: TokenwardEnv, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenward", "admins", *args],
        input=stdin, env=env.environ(), cwd=env.home, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_operator_accounts_from_the_command_line(tw_env: TokenwardEnv) -> None:
    created = admins(tw_env, "create", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "operator alice created (admin)"
    assert PASSWORD not in created.stdout + created.stderr
    short = admins(tw_env, "create", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 1
    assert short.stderr.strip().endswith(
        "password: Value error, must be 12 to 1024 characters long"
    )
    role = admins(tw_env, "create", "bob", "--role", "root", "--password-stdin", stdin=PASSWORD)
    assert role.returncode == 1
    assert "role: Input should be 'admin' or 'read-only'" in role.stderr
    again = admins(tw_env, "create", "alice", "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1] == "error: operator alice already exists"
    no_tty = admins(tw_env, "create", "carol")
    assert no_tty.returncode == 1
    assert "--password-stdin" in no_tty.stderr
    for args in (("disable", "alice"), ("enable", "alice"), ("unlock", "alice")):
        assert admins(tw_env, *args).returncode == 0, args
    reset = admins(
        tw_env, "reset-password", "alice", "--password-stdin", stdin="a new long password"
    )
    assert reset.stdout.strip() == "password of alice reset; their sessions have ended"
    assert admins(tw_env, "disable", "zed").returncode == 2
    listed = json.loads(admins(tw_env, "list", "--json").stdout)
    assert [(o["name"], o["role"], o["enabled"]) for o in listed] == [("alice", "admin", True)]
    assert "password" not in json.dumps(listed)
    trail = tw_env.cli_json("audit", "--limit", "20")
    events = [(e["event"], e["actor"]) for e in trail]
    for event in ("created", "disabled", "enabled", "unlocked", "password_reset"):
        assert (f"operator.{event}", "cli") in events
