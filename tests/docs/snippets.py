"""Docs that run: the fenced blocks of a Markdown page, extracted and executed in order against a
real ``tokenward serve`` (the convention is in docs/contributing-docs.md).

* ```` ```sh ```` (``bash``, ``shell``) blocks run in one bash session per page, with
  ``set -euo pipefail``: a failing command or an unset variable fails the page, and variables
  carry from one block to the next. ```` ```python ```` blocks run in one Python session per
  page (top-level ``await`` allowed), seeing the shell session's exported variables.
* A ```` ```console ```` or ```` ```text ```` block right after a runnable block (nothing but
  blank lines between) is its output: compared line by line, trailing spaces ignored, ``...``
  matching any text within a line, and a line of just ``...`` any number of lines.
* ``<!-- docs-test: skip REASON -->`` right before a block: not run; the reason is required.
  ``<!-- docs-test: file NAME -->`` right before a block: its text is written to ``NAME``
  (a configuration file the next blocks use).
* Every other block (``json``, ``yaml``, no language...) is an illustration.

Each page runs in a fresh directory with a fresh ``TOKENWARD_HOME`` and its own server on a free
port; ``8000`` (the server's port in the docs) and ``8001`` (the example API's) are replaced by
free ports in the blocks. ``TOKENWARD_ISSUER`` is not set: ``tokenward token``, ``doctor`` and
the example API find the issuer the server recorded in the home, as for a reader on any port.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "BlockFailed", "PageSession", "extract", "matches", "substitute"]

RUNNABLE = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python", "py": "python"}
OUTPUT = {"console", "text"}
BLOCK_TIMEOUT = 180.0
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)[^\n]*$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<verb>skip|file)\b(?P<arg>[^>]*?)\s*-->\s*$")
_SENTINEL = "__tokenward_docs_block_done__"


class BlockFailed(AssertionError):
    """A block failed or printed something else than the page shows."""


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    #: 1-based line of the opening fence.
    line: int
    skip: str | None = None
    file: str | None = None
    #: The output block that follows, if any.
    expected: str | None = None

    @property
    def kind(self) -> str | None:
        """``sh``, ``python`` or None (not run)."""
        if self.skip is not None or self.file is not None:
            return None
        return RUNNABLE.get(self.lang)


def _fences(lines: list[str]) -> Iterator[tuple[int, str, str, str | None]]:
    """(line index, language, body, marker line) of every fenced block."""
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end].removeprefix(indent))
            end += 1
        previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), None)
        yield index, opening["lang"].lower(), "\n".join(body) + "\n", previous
        index = end + 1


def extract(markdown: str) -> list[Block]:
    """The page's fenced blocks with their markers and expected outputs, in order."""
    lines = markdown.splitlines()
    found = list(_fences(lines))
    blocks: list[Block] = []
    for position, (index, lang, body, previous) in enumerate(found):
        marker = _MARKER.match(previous or "")
        skip = file = None
        if marker is not None:
            argument = marker["arg"].strip()
            if not argument:
                raise ValueError(f"line {index}: `docs-test: {marker['verb']}` needs an argument")
            skip, file = (argument, None) if marker["verb"] == "skip" else (None, argument)
        expected = None
        if position + 1 < len(found) and RUNNABLE.get(lang):
            next_index, next_lang, next_body, _ = found[position + 1]
            end = _closing(lines, index)
            between = lines[end + 1 : next_index]
            if next_lang in OUTPUT and not any(line.strip() for line in between):
                expected = next_body
        blocks.append(Block(lang, body, index + 1, skip, file, expected))
    return blocks


def _closing(lines: list[str], index: int) -> int:
    fence = _FENCE.match(lines[index])
    assert fence is not None
    end = index + 1
    while end < len(lines) and not lines[end].strip().startswith(fence["fence"]):
        end += 1
    return end


def substitute(text: str, ports: Mapping[int, int]) -> str:
    """The documented ports replaced by the test's (``8000`` -> the server's port...)."""
    for documented, actual in ports.items():
        text = re.sub(rf"(?<![\d.]){documented}(?![\d])", str(actual), text)
    return text


def matches(expected: str, actual: str) -> bool:
    """``actual`` is what ``expected`` shows, ``...`` standing for any text."""
    want = _lines(expected)
    have = _lines(actual)
    return _match(want, have)


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _match(want: list[str], have: list[str]) -> bool:
    if not want:
        return not have
    if want[0] == "...":
        return any(_match(want[1:], have[i:]) for i in range(len(have) + 1))
    if not have:
        return False
    pattern = ".*".join(re.escape(part) for part in want[0].split("..."))
    return re.fullmatch(pattern, have[0]) is not None and _match(want[1:], have[1:])


_PYTHON_DRIVER = r"""
import ast, asyncio, contextlib, io, json, os, sys, traceback
namespace = {"__name__": "__docs__"}
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
for line in sys.stdin:
    request = json.loads(line)
    os.environ.clear()
    os.environ.update(request["env"])
    buffer = io.StringIO()
    ok, error = True, ""
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            code = compile(request["code"], request["name"], "exec",
                           flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(code, namespace)
            if asyncio.iscoroutine(result):
                loop.run_until_complete(result)
    except BaseException:
        ok, error = False, traceback.format_exc()
    sys.stdout.write(json.dumps({"ok": ok, "out": buffer.getvalue(), "error": error}) + "\n")
    sys.stdout.flush()
"""


class PageSession:
    """One page's bash and Python sessions, in ``workdir`` with ``environ``."""

    def __init__(self, workdir: Path, environ: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.environ = dict(environ)
        self.scratch = workdir / ".docs-test"
        self.scratch.mkdir()
        self._count = 0
        self._bash = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=self.environ,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self._send("set -euo pipefail")
        self._python: subprocess.Popen[str] | None = None

    def _pump(self) -> None:
        assert self._bash.stdout is not None
        for line in self._bash.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _send(self, command: str) -> None:
        assert self._bash.stdin is not None
        self._bash.stdin.write(command + "\n")
        self._bash.stdin.flush()

    def run(self, block: Block, code: str) -> str:
        """Run one block; return its output (stdout and stderr). Raises BlockFailed."""
        self._count += 1
        if block.kind == "sh":
            return self._run_sh(code)
        return self._run_python(code, f"line {block.line}")

    def _run_sh(self, code: str) -> str:
        script = self.scratch / f"block-{self._count}.sh"
        output = self.scratch / f"block-{self._count}.out"
        script.write_text(code)
        self._send(
            f"source {script} > {output} 2>&1; env -0 > {self.scratch}/env; echo {_SENTINEL}"
        )
        try:
            while True:
                line = self._lines.get(timeout=BLOCK_TIMEOUT)
                if line is None:
                    raise BlockFailed(f"the shell exited (a command failed):\n{output.read_text()}")
                if line.strip() == _SENTINEL:
                    return output.read_text()
        except queue.Empty:
            raise BlockFailed(f"timed out after {BLOCK_TIMEOUT} s:\n{output.read_text()}") from None

    def _shell_environ(self) -> dict[str, str]:
        dump = self.scratch / "env"
        if not dump.exists():
            return dict(self.environ)
        pairs = (item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
        return dict(pairs)

    def _run_python(self, code: str, name: str) -> str:
        if self._python is None:
            self._python = subprocess.Popen(
                [sys.executable, "-u", "-c", _PYTHON_DRIVER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=self.workdir,
                env=self.environ,
                text=True,
                start_new_session=True,
            )
        assert self._python.stdin is not None
        assert self._python.stdout is not None
        request = {"code": code, "name": name, "env": self._shell_environ()}
        self._python.stdin.write(json.dumps(request) + "\n")
        self._python.stdin.flush()
        answer = self._python.stdout.readline()
        if not answer:
            raise BlockFailed("the Python session exited")
        result = json.loads(answer)
        if not result["ok"]:
            raise BlockFailed(f"{result['out']}{result['error']}")
        return str(result["out"])

    def close(self) -> None:
        """End both sessions and everything they started (each is its own process group)."""
        for process in (self._bash, self._python):
            if process is None or process.poll() is not None:
                if process is not None:
                    _kill_group(process.pid)
                continue
            _kill_group(process.pid)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill_group(process.pid, kill=True)
                process.wait()
        for process in (self._bash, self._python):
            for stream in (process.stdin, process.stdout) if process else ():
                if stream is not None:
                    stream.close()


def _kill_group(pid: int, *, kill: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL if kill else signal.SIGTERM)
