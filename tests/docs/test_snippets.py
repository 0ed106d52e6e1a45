"""Every shell and Python snippet of README.md and docs/*.md runs, in order, against a real
``tokenward serve``, and prints what the page shows (convention: docs/contributing-docs.md,
runner: ``tests/docs/snippets.py``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.snippets import BlockFailed, PageSession, extract, matches, substitute
from tests.support.live import free_port
from tests.support.tokenward_server import LoggedProcess

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = [p for p in PAGES if any(b.kind for b in extract(p.read_text()))]


def _environ(workdir: Path) -> dict[str, str]:
    """A reader's shell: the virtualenv first on PATH (as after `. .venv/bin/activate`), the
    repository importable (``examples``), a fresh home; nothing else of tokenward's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENWARD_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        TOKENWARD_HOME=str(workdir / "home"),
        XDG_DATA_HOME=str(workdir / "xdg"),
        TOKENWARD_LOG_FORMAT="console",
    )
    return env


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[tuple[LoggedProcess, dict[int, int]]]:
    ports = {8000: free_port(), 8001: free_port()}
    server = LoggedProcess(
        [sys.executable, "-m", "tokenward", "serve", "--port", str(ports[8000])],
        env=_environ(tmp_path),
        cwd=tmp_path,
        log_path=tmp_path / "server.log",
        url=f"http://127.0.0.1:{ports[8000]}",
        ready_path="/healthz",
        name="tokenward serve",
    )
    try:
        yield server, ports
    finally:
        server.stop()


@pytest.mark.parametrize("page", RUN, ids=[str(p.relative_to(ROOT)) for p in RUN])
def test_the_page_runs(
    page: Path, tmp_path: Path, page_server: tuple[LoggedProcess, dict[int, int]]
) -> None:
    server, ports = page_server
    environ = _environ(tmp_path)  # no TOKENWARD_ISSUER: found in the home, as by a reader
    session = PageSession(tmp_path, environ)
    name = page.relative_to(ROOT)
    try:
        for block in extract(page.read_text()):
            code = substitute(block.code, ports)
            if block.file is not None:
                (tmp_path / block.file).write_text(code)
            if block.kind is None:
                continue
            try:
                output = session.run(block, code)
            except BlockFailed as exc:
                pytest.fail(f"{name}:{block.line}: {exc}\n-- server log --\n{server.log()[-3000:]}")
            expected = block.expected
            if expected is not None and not matches(substitute(expected, ports), output):
                pytest.fail(
                    f"{name}:{block.line} printed\n{output}\nnot what the page shows:\n{expected}"
                    f"\n-- server log --\n{server.log()[-3000:]}"
                )
    finally:
        session.close()


def test_every_page_with_a_snippet_is_run() -> None:
    """A page whose every block is marked skip or is an illustration is fine; one whose
    runnable blocks the extractor misses is not (an unknown fence language)."""
    for page in PAGES:
        for block in extract(page.read_text()):
            if block.lang in ("shell-session", "sh-session", "zsh", "pycon", "ipython"):
                pytest.fail(
                    f"{page.name}:{block.line}: use sh, python or console "
                    "(docs/contributing-docs.md)"
                )
