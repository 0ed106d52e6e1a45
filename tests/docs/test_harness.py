"""The docs runner itself: what it extracts, runs and compares (each of these can fail)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.snippets import Block, BlockFailed, PageSession, extract, matches, substitute

PAGE = """# A page

<!-- docs-test: skip runs forever -->
```sh
make serve
```

```sh
X=hello
echo "$X"
```

```console
hello
```

<!-- docs-test: file conf.yaml -->
```yaml
apis: []
```

1. In a list:

   ```python
   print(len("abc"))
   ```

```json
{"illustration": true}
```
"""


def test_extract() -> None:
    blocks = extract(PAGE)
    assert [(b.lang, b.kind, b.skip, b.file) for b in blocks] == [
        ("sh", None, "runs forever", None),
        ("sh", "sh", None, None),
        ("console", None, None, None),
        ("yaml", None, None, "conf.yaml"),
        ("python", "python", None, None),
        ("json", None, None, None),
    ]
    assert blocks[1].expected == "hello\n"
    assert blocks[4].code == 'print(len("abc"))\n'
    assert blocks[4].expected is None


def test_a_marker_needs_its_reason() -> None:
    with pytest.raises(ValueError, match="needs an argument"):
        extract("<!-- docs-test: skip -->\n```sh\nmake serve\n```\n")


@pytest.mark.parametrize(
    ("expected", "actual", "result"),
    [
        ("a\nb\n", "a\nb  \n\n", True),
        ("a\nb\n", "a\nc\n", False),
        ("token ...\n", "token eyJhbGciOi\n", True),
        ("first\n...\nlast\n", "first\n1\n2\nlast\n", True),
        ("first\n...\nlast\n", "first\nlast\n", True),
        ("first\n...\nlast\n", "first\n1\n", False),
        ("a\n", "a\nb\n", False),
    ],
)
def test_matches(expected: str, actual: str, result: bool) -> None:
    assert matches(expected, actual) is result


def test_substitute_ports() -> None:
    text = "curl http://127.0.0.1:8000/token; uvicorn app --port 8001; 18000 80001 1.8000"
    assert substitute(text, {8000: 41000, 8001: 41001}) == (
        "curl http://127.0.0.1:41000/token; uvicorn app --port 41001; 18000 80001 1.8000"
    )


def test_sessions_carry_state_and_fail_loudly(tmp_path: Path) -> None:
    session = PageSession(tmp_path, {"PATH": "/usr/bin:/bin"})
    sh = Block("sh", "", 1)
    py = Block("python", "", 2)
    try:
        assert session.run(sh, "export NAME=docs\nGREETING=hi\n") == ""
        assert session.run(sh, 'echo "$GREETING $NAME"\n') == "hi docs\n"
        assert session.run(py, "import os\nvalue = os.environ['NAME']\n") == ""
        assert session.run(py, "print(value.upper())\n") == "DOCS\n"
        assert session.run(py, "import asyncio\nawait asyncio.sleep(0)\nprint('awaited')\n") == (
            "awaited\n"
        )
        with pytest.raises(BlockFailed, match="NameError"):
            session.run(py, "print(undefined_name)\n")
        with pytest.raises(BlockFailed, match="unbound variable"):
            session.run(sh, 'echo "$NOT_SET"\n')
    finally:
        session.close()
