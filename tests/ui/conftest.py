"""The ops console in a real Chromium (Debian's package) driven by Playwright, against the
end-to-end stack (every service as a process behind the nginx gateway, tests/e2e/conftest.py).

`make test-ui` runs these; `make screenshots` runs them with SHOP_SCREENSHOTS set, and each page
is written as a PNG there.
"""

import importlib.util
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Response, async_playwright

CHROMIUM = os.environ.get("SHOP_CHROMIUM", "/usr/bin/chromium")


def _e2e_harness() -> ModuleType:
    # The e2e stack fixture is reused, not copied; tests/ is no package, so load it by path.
    path = Path(__file__).resolve().parents[1] / "e2e" / "conftest.py"
    spec = importlib.util.spec_from_file_location("e2e_harness", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _e2e_harness()
stack = harness.stack
ADMIN_PASSWORD: str = harness.ADMIN_PASSWORD
if TYPE_CHECKING:
    from tests.e2e.conftest import Stack
else:
    Stack = harness.Stack


def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: make test-ui installs Debian's chromium package")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium()
    async with async_playwright() as playwright:
        # Chromium's sandbox cannot start as root (CI runs as root).
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = await playwright.chromium.launch(executable_path=executable, args=args)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser, stack: Stack) -> AsyncIterator[Page]:
    context = await browser.new_context(
        base_url=str(stack.client.base_url), viewport={"width": 1100, "height": 760}
    )
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))

    def console_error(message: ConsoleMessage) -> None:
        # An API's 4xx is logged by Chromium too: those the tests provoke are not errors.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def missing_asset(response: Response) -> None:
        if "/console/" in response.url and response.status >= 400:
            errors.append(f"{response.status} {response.url}")

    opened.on("console", console_error)
    opened.on("response", missing_asset)
    yield opened
    await context.close()
    # A script error or a refused resource (CSP, 404, wrong MIME type) is a failed test.
    assert not errors, errors


async def log_in(
    page: Page, password: str = ADMIN_PASSWORD, email: str = "admin@shop.local"
) -> None:
    await page.goto("/console/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


async def shoot(page: Page, name: str) -> None:
    """Save the page as docs' screenshot `name`.png when `make screenshots` asks for them
    (Playwright makes the folder)."""
    folder = os.environ.get("SHOP_SCREENSHOTS")
    if folder:
        await page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
