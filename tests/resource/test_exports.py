"""The public API is exactly what docs/resource.md promises."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "resource.md"

EXPORTS = {
    "tokenward.resource": {
        "DEFAULT_ALGORITHMS",
        "AccessToken",
        "BearerError",
        "InsufficientScope",
        "Introspection",
        "InvalidRequest",
        "InvalidToken",
        "JwksCache",
        "JwksCachePolicy",
        "MissingToken",
        "TokenVerifier",
        "VerificationPolicy",
        "VerifierUnavailable",
    },
    "tokenward.resource.asgi": {"BearerAuthMiddleware", "RequireScopes", "TokenUser"},
    "tokenward.resource.fastapi": {"BearerAuth", "BearerHTTPException", "add_bearer_error_handler"},
    "tokenward.resource.flask": {"BearerAuth", "current_token", "require_token"},
}


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_exports_are_exactly_the_documented_ones(module: str) -> None:
    imported = importlib.import_module(module)
    assert set(imported.__all__) == EXPORTS[module]
    for name in imported.__all__:
        assert hasattr(imported, name)


def test_every_export_is_documented() -> None:
    section = DOC.read_text().split("## Public API", 1)[1]
    documented = set(re.findall(r"`([A-Za-z_]+)`", section))
    for module, names in EXPORTS.items():
        assert f"`{module}`" in section
        assert names <= documented, names - documented


def test_the_package_does_not_import_web_frameworks() -> None:
    """`import tokenward.resource` works without Starlette, FastAPI or Flask installed."""
    import subprocess
    import sys

    code = (
        "import sys, tokenward.resource, tokenward.resource.asgi; "
        "print(sorted(m for m in ('starlette', 'fastapi', 'flask') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
