"""The web console in a real browser: Playwright for Python driving Debian's Chromium against a
real ``tokenward serve``.

The main flow: sign in -> create an API with a scope -> create a client with that scope ->
copy the secret from the page -> get a token with it -> rotate the secret -> the old secret is
refused after the grace period -> disable the client -> its token requests fail -> the audit
page shows every step. Then: a form without its CSRF token is refused; five wrong passwords
lock an account (and ``tokenward admins unlock`` is the way back); a read-only operator cannot
change anything; every page fits a phone's width and can be used from the keyboard.

The run saves screenshots of the main pages: into docs/console/ (used by docs/console.md) when
``TOKENWARD_SCREENSHOTS=docs`` (``make screenshots``), otherwise into the test's temporary
directory, so a test run leaves the working tree clean.
Chromium comes from ``scripts/bootstrap.sh`` (apt); without it these tests skip, except in CI
(``CI=true``) or with ``TOKENWARD_TEST_BROWSER=required``, where its absence is a failure.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.tokenward_server import ServerProcess, TokenwardEnv, tokenward_server

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = (
    ROOT / "docs" / "console"
    if os.environ.get("TOKENWARD_SCREENSHOTS") == "docs"
    else Path(tempfile.gettempdir()) / "tokenward-console-screenshots"
)
PASSWORD = "correct horse battery staple"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    if os.environ.get("CI") == "true" or os.environ.get("TOKENWARD_TEST_BROWSER") == "required":
        pytest.fail(f"{CHROMIUM} is missing: scripts/bootstrap.sh installs it", pytrace=False)
    pytest.skip(
        f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium, or "
        "bash scripts/bootstrap.sh)",
        allow_module_level=True,
    )

from playwright.sync_api import BrowserContext, Page, expect, sync_playwright  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def add_operator(env: TokenwardEnv, name: str, role: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "tokenward", "admins", "create", name, "--role", role,
         "--password-stdin"],
        input=PASSWORD + "\n", env=env.environ(), cwd=env.home, check=True, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = TokenwardEnv(home=tmp_path_factory.mktemp("console"))
    for name, role in (("alice", "admin"), ("rita", "read-only"), ("lou", "admin")):
        add_operator(env, name, role)
    env.cli("clients", "create", "--name", "seeded", "--client-id", "seeded")
    with tokenward_server(env) as running:
        yield running


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        browser_context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 860},
        )
        browser_context.set_default_timeout(15_000)
        try:
            yield browser_context
        finally:
            browser_context.close()


@pytest.fixture
def page(context: BrowserContext, server: ServerProcess) -> Iterator[Page]:
    context.clear_cookies()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    tab = context.new_page()
    try:
        yield tab
    finally:
        tab.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, server: ServerProcess, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{server.url}/admin/")
    expect(page).to_have_url(f"{server.url}/admin/login?next=%2Fadmin%2F")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


#: Token requests of this module by outcome, to check the overview's counts against.
SENT = {"issued": 0, "failed": 0}


def token(server: ServerProcess, client_id: str, secret: str) -> httpx.Response:
    response = httpx.post(
        f"{server.url}/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    SENT["issued" if response.status_code == 200 else "failed"] += 1
    return response


def chart_summary(page: Page) -> str:
    return page.locator(".chart title").first.text_content() or ""


def copy_secret(page: Page) -> str:
    """Press the page's copy button and read the clipboard, as an operator would."""
    page.get_by_role("button", name="Copy client secret").click()
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    copied: str = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.locator("#client-secret").input_value()
    assert len(copied) >= 43
    return copied


def create_api(page: Page, server: ServerProcess, identifier: str, scopes: str) -> None:
    page.goto(f"{server.url}/admin/apis")
    page.get_by_role("link", name="New API").click()
    page.get_by_label("Identifier").fill(identifier)
    page.get_by_label("Name").fill("Orders")
    page.get_by_label("Scopes").fill(scopes)
    page.get_by_role("button", name="Create API").click()


def test_the_whole_console_flow(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.url}/admin/login")
    shot(page, "login")
    sign_in(page, server, "alice")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    create_api(page, server, "https://orders.example", "orders:read")
    expect(page.get_by_role("status")).to_have_text("API created.")
    page.get_by_role("link", name="Edit Orders").click()
    page.get_by_label("Add scopes").fill("orders:write")
    page.get_by_role("button", name="Save API").click()
    expect(page.get_by_role("cell", name="orders:read orders:write")).to_be_visible()
    shot(page, "apis")

    page.get_by_role("navigation").get_by_role("link", name="Clients").click()
    page.get_by_role("link", name="New client").click()
    page.get_by_label("Name").fill("billing")
    page.get_by_label("Client id").fill("billing")
    page.get_by_label("orders:read").check()
    page.get_by_role("button", name="Create client").click()
    expect(page.get_by_role("heading", name="Client created")).to_be_visible()
    first = copy_secret(page)
    curl = page.locator("#curl").input_value()
    assert curl.startswith(f"curl -sS {server.url}/token -u billing:")
    shot(page, "client-created")

    issued = token(server, "billing", first)
    assert issued.status_code == 200, issued.text
    assert issued.json()["scope"] == "orders:read"
    if shutil.which("curl"):
        run = subprocess.run(shlex.split(curl), capture_output=True, text=True, timeout=30)
        assert '"access_token"' in run.stdout, run.stdout + run.stderr
        SENT["issued"] += 1

    page.get_by_role("link", name="I have stored it").click()
    page.get_by_label("Grace, seconds").fill("3")
    rotated_at = time.monotonic()
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", name="New secret")).to_be_visible()
    second = copy_secret(page)
    assert second != first
    assert token(server, "billing", second).status_code == 200
    assert token(server, "billing", first).status_code == 200  # the overlap
    deadline = time.monotonic() + 20
    while token(server, "billing", first).status_code == 200:
        assert time.monotonic() < deadline, "the old secret still works long after its grace"
        time.sleep(0.25)
    # Seconds are whole on the server: a 3 s grace lasts at least 2 s after the click.
    assert time.monotonic() - rotated_at >= 1.9
    refused = token(server, "billing", first)
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")

    page.get_by_role("link", name="I have stored it").click()
    shot(page, "client")
    page.get_by_role("link", name="Disable").click()
    expect(page.get_by_role("heading", name="Disable client billing?")).to_be_visible()
    page.get_by_role("button", name="Disable client").click()
    expect(page.get_by_role("status")).to_contain_text("Client disabled")
    failed = token(server, "billing", second)
    assert (failed.status_code, failed.json()["error"]) == (401, "invalid_client")

    page.get_by_role("navigation").get_by_role("link", name="Audit trail").click()
    rows = page.locator("#audit tbody tr")
    text = " | ".join(rows.all_inner_texts())
    steps = ["operator.login", "api.created", "api.updated", "client.created", "secret.added",
             "secret.revoked", "client.updated"]  # fmt: skip
    for step in steps:
        assert step in text, f"{step} missing from the audit page: {text}"
    assert text.count("console:alice") >= len(steps)
    page.get_by_label("Client id").fill("billing")
    page.get_by_role("button", name="Filter").click()
    filtered = page.locator("#audit tbody tr").all_inner_texts()
    assert filtered
    assert all("billing" in row for row in filtered)
    assert not any("api.created" in row for row in filtered)
    shot(page, "audit")

    page.get_by_role("navigation").get_by_role("link", name="Clients").click()
    page.get_by_label("Search by id, name or scope").fill("bill")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name="billing")).to_be_visible()
    expect(page.get_by_role("link", name="seeded")).to_have_count(0)
    shot(page, "clients")

    page.get_by_role("navigation").get_by_role("link", name="Signing keys").click()
    page.get_by_role("button", name="Rotate signing key").click()
    expect(page.get_by_role("status")).to_have_text("New signing key published.")
    expect(page.get_by_role("cell", name="next", exact=True)).to_be_visible()
    shot(page, "keys")

    page.get_by_role("navigation").get_by_role("link", name="Overview").click()
    expected = f"{SENT['issued']} tokens issued, {SENT['failed']} failures"
    deadline = time.monotonic() + 10
    while expected not in chart_summary(page):  # the usage sink writes once a second
        assert time.monotonic() < deadline, f"{chart_summary(page)}, expected {expected}"
        time.sleep(0.5)
        page.reload()
    expect(page.get_by_role("link", name="billing")).to_be_visible()  # failed most
    shot(page, "overview")


def test_a_form_without_its_csrf_token_is_refused(page: Page, server: ServerProcess) -> None:
    sign_in(page, server, "alice")
    page.goto(f"{server.url}/admin/apis/new")
    page.evaluate("document.querySelector('main form input[name=csrf_token]').remove()")
    page.get_by_label("Identifier").fill("https://forged.example")
    page.get_by_label("Name").fill("Forged")
    page.get_by_role("button", name="Create API").click()
    expect(page.get_by_role("heading", name="Refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("security token")
    page.goto(f"{server.url}/admin/apis")
    expect(page.get_by_text("https://forged.example")).to_have_count(0)


def test_five_wrong_passwords_lock_the_account(page: Page, server: ServerProcess) -> None:
    for _ in range(5):
        sign_in(page, server, "lou", "not the password")
        expect(page.get_by_role("alert")).to_contain_text("Sign-in refused")
    sign_in(page, server, "lou")  # the right password: still refused while locked
    expect(page.get_by_role("alert")).to_contain_text("Sign-in refused")
    listed: list[dict[str, Any]] = server.env.cli_json("admins", "list")
    lou = next(o for o in listed if o["name"] == "lou")
    assert lou["locked_until"] is not None
    server.env.cli("admins", "unlock", "lou")
    sign_in(page, server, "lou")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_a_read_only_operator_cannot_change_anything(page: Page, server: ServerProcess) -> None:
    sign_in(page, server, "rita")
    expect(page.get_by_text("read-only")).to_be_visible()
    page.goto(f"{server.url}/admin/clients/seeded")
    expect(page.get_by_role("heading", name="seeded")).to_be_visible()
    for control in ("Disable", "Delete", "Rotate secret", "Save scopes", "Add secret"):
        expect(page.get_by_text(control, exact=True)).to_have_count(0)
    page.goto(f"{server.url}/admin/clients/new")  # the form is reachable, submitting is not
    page.get_by_label("Name").fill("sneaky")
    page.get_by_role("button", name="Create client").click()
    expect(page.get_by_role("alert")).to_contain_text("read-only")
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert csrf
    for path in ("/admin/clients/seeded/disable", "/admin/keys/rotate", "/admin/apis/new"):
        response = page.request.post(f"{server.url}{path}", form={"csrf_token": csrf})
        assert response.status == 403, path
    clients: list[dict[str, Any]] = server.env.cli_json("clients", "list")
    assert [c["client_id"] for c in clients if c["name"] == "sneaky"] == []
    assert next(c for c in clients if c["client_id"] == "seeded")["enabled"] is True


def test_phone_width_and_keyboard(page: Page, server: ServerProcess) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/admin/login")
    assert page.evaluate("document.activeElement.id") == "name"  # autofocus
    ring = page.evaluate("getComputedStyle(document.activeElement).outlineWidth")
    assert float(ring.removesuffix("px")) >= 2, ring  # a visible focus ring
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    pages = ["", "apis", "clients", "clients/seeded", "clients/new", "keys", "audit", "operators"]
    for path in (f"/admin/{name}" for name in pages):
        page.goto(f"{server.url}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide on a 390px phone"
        unlabelled = page.evaluate(
            "[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
            ".filter(e => !e.labels || e.labels.length === 0).map(e => e.name)"
        )
        assert unlabelled == [], f"{path}: inputs without a label: {unlabelled}"
    page.goto(f"{server.url}/admin/")
    shot(page, "overview-phone")
