"""``tokenward admins``: the console's operator accounts (admin or read-only).

Passwords are read from a hidden prompt, or with ``--password-stdin`` from the first line of
standard input (scripts), never from the command line, where ``ps`` and shell history would
show them. ``reset-password`` ends the operator's sessions and lifts a lockout.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from tokenward.server.admin.operators import Operators
from tokenward.server.admin.schemas import OperatorCreate, PasswordReset
from tokenward.server.admin.views import OperatorView
from tokenward.server.cli.common import (
    ACTOR,
    JsonOpt,
    emit,
    fail,
    group,
    parse,
    run_on_server,
    when,
)

__all__ = ["app"]

T = TypeVar("T")

app = group("Console operators: create, list, disable, enable, unlock, reset-password.")

NameArg = Annotated[str, typer.Argument(help="The operator's sign-in name.")]
StdinOpt = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]


def run_operators(work: Callable[[Operators], Awaitable[T]], *, writes: bool = True) -> T:
    """Run one operator-account operation against the configured database."""
    return run_on_server(lambda server: work(server.operators), writes=writes)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise fail("no terminal to prompt on: pass --password-stdin and the password on stdin")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _line(operator: OperatorView) -> str:
    state = "enabled" if operator.enabled else "DISABLED"
    if operator.locked_until is not None:
        state += f", locked until {when(operator.locked_until)}"
    return f"{operator.name}\t{operator.role}\t{state}\tlast sign-in {when(operator.last_login_at)}"


@app.command("create")
def create(
    name: NameArg,
    role: Annotated[str, typer.Option(help="admin (changes anything) or read-only.")] = "admin",
    password_stdin: StdinOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Create an operator who can sign in to the console."""
    spec = parse(OperatorCreate, name=name, role=role, password=_password(password_stdin))
    operator = run_operators(lambda ops: ops.create(spec, actor=ACTOR))
    emit(operator, as_json, [f"operator {operator.name} created ({operator.role})"])


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List operators, their role and state."""
    operators = run_operators(lambda ops: ops.list_operators(), writes=False)
    emit(operators, as_json, [_line(o) for o in operators] or ["(no operators)"])


@app.command("disable")
def disable(name: NameArg, as_json: JsonOpt = False) -> None:
    """Disable an operator; their console sessions end at once."""
    operator = run_operators(lambda ops: ops.disable(name, actor=ACTOR))
    emit(operator, as_json, [f"operator {name} disabled; their sessions have ended"])


@app.command("enable")
def enable(name: NameArg, as_json: JsonOpt = False) -> None:
    """Enable a disabled operator again."""
    operator = run_operators(lambda ops: ops.enable(name, actor=ACTOR))
    emit(operator, as_json, [f"operator {name} enabled"])


@app.command("unlock")
def unlock(name: NameArg, as_json: JsonOpt = False) -> None:
    """Lift a lockout after repeated wrong passwords."""
    operator = run_operators(lambda ops: ops.unlock(name, actor=ACTOR))
    emit(operator, as_json, [f"operator {name} unlocked"])


@app.command("reset-password")
def reset_password(
    name: NameArg, password_stdin: StdinOpt = False, as_json: JsonOpt = False
) -> None:
    """Set a new password: ends the operator's sessions and lifts a lockout."""
    spec = parse(PasswordReset, password=_password(password_stdin))
    operator = run_operators(lambda ops: ops.reset_password(name, spec, actor=ACTOR))
    emit(operator, as_json, [f"password of {name} reset; their sessions have ended"])
