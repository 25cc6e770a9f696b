"""The operator console in a real browser (Debian's Chromium driven by Playwright) over a stack
fed with a slice of the CDNOW replay: login, every page, links, edits, exports, accessibility.

Screenshots of every page go to a folder this module prints (``console-screenshots`` under
pytest's temporary directory).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from crm_devstack.cdnow import CALIBRATION_END, cdnow_sample_path
from crm_devstack.demo import DEMO_SETTINGS, replay_cdnow
from crm_devstack.launcher import Stack, start_stack
from crm_shared import API_KEY_HEADER, Scope, generate_api_key

pytestmark = pytest.mark.kafka
CHROMIUM = Path("/usr/bin/chromium")
# Enough customers for every model (BG/NBD needs 20) and for warnings; small enough to stay quick.
CUSTOMERS = 60
AS_OF = CALIBRATION_END.isoformat()
PAGES = {
    "today": f"/?as_of={AS_OF}",
    "customer-search": "/customers",
    "segments": "/segments",
    "lifecycle": f"/lifecycle?as_of={AS_OF}",
    "playbooks": "/playbooks",
    "rule-edit": "/playbooks/rules/warning-retention-offer",
    "lifecycle-rules": "/playbooks/lifecycle-rules",
    "exports": "/exports",
}

if not CHROMIUM.exists():  # `make install` installs it; say why rather than fail obscurely
    pytest.skip("Chromium is not installed: run `make install`", allow_module_level=True)


@dataclass(frozen=True)
class Console:
    """The running console and what the tests log in with."""

    stack: Stack
    url: str
    admin_key: str
    read_key: str
    screenshots: Path
    customer_email: str
    customer_id: str

    def api(self, service: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.stack.urls[service],
            headers={API_KEY_HEADER: self.admin_key},
            trust_env=False,
            timeout=30,
        )


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    data = tmp_path_factory.mktemp("console-stack")
    purchases = data / "purchases.txt"
    lines = cdnow_sample_path().read_text().splitlines()
    purchases.write_text("\n".join(line for line in lines if int(line.split()[1]) <= CUSTOMERS))
    read_key, read_record = generate_api_key("console-reader", [Scope.READ])
    with start_stack(
        data_dir=data,
        free_ports=True,
        extra_env=DEMO_SETTINGS,
        console=True,
        extra_api_keys=[read_record],
    ) as stack:
        replay_cdnow(stack, purchases, timeout=300)
        assert stack.console is not None
        email = "ada.console@example.com"
        with httpx.Client(headers={API_KEY_HEADER: stack.api_key}, trust_env=False) as client:
            created = client.post(
                f"{stack.urls['profile-service']}/v1/customers",
                json={"email": email, "first_name": "Ada", "external_id": "shop-ada-1"},
            )
            assert created.status_code == 201, created.text
            customer_id = created.json()["id"]
            # notification-service learns of the customer from customer.created (Kafka).
            notification = stack.urls["notification-service"]
            rule = client.get(f"{notification}/v1/rules/warning-retention-offer").json()
            preview = {"template_id": rule["template_id"], "channel": "email"}
            for _ in range(300):
                known = client.post(
                    f"{notification}/v1/templates/preview",
                    json={**preview, "customer_id": customer_id},
                )
                if known.status_code != 404:
                    break
                time.sleep(0.2)
            assert known.status_code == 200, known.text
            lifecycle = stack.urls["lifecycle-service"]
            for _ in range(300):
                if client.get(f"{lifecycle}/v1/customers/{customer_id}/stage").is_success:
                    break
                time.sleep(0.2)
        screenshots = tmp_path_factory.mktemp("console-screenshots")
        print(f"\nconsole screenshots: {screenshots}")
        yield Console(
            stack, stack.console.base_url, stack.api_key, read_key, screenshots, email, customer_id
        )


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[Browser]:
    # After the console's stack: Playwright's sync API runs an event loop in this thread, in
    # which the replay (asyncio.run) could not start.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(base_url=console.url, accept_downloads=True)
    opened = context.new_page()
    yield opened
    context.close()


def log_in(page: Page, key: str) -> None:
    page.goto("/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Log in").click()


def test_a_wrong_key_is_refused_and_a_right_one_opens_today(page: Page, console: Console) -> None:
    log_in(page, "crm_not-a-key-of-this-system")
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    assert page.url.endswith("/login")
    page.goto("/")  # still not logged in
    assert page.url.endswith("/login")

    log_in(page, console.admin_key)
    expect(page.get_by_role("heading", level=1)).to_have_text("Today")
    [cookie] = [c for c in page.context.cookies() if c["name"] == "crm_console_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert console.admin_key not in cookie["value"]  # encrypted, not merely signed


def test_every_page_renders_with_the_replay_and_is_photographed(
    page: Page, console: Console
) -> None:
    log_in(page, console.admin_key)
    for name, path in PAGES.items():
        response = page.goto(path)
        assert response is not None
        assert response.status == 200, f"{path}: {response.status}"
        expect(page.locator("h1")).to_have_count(1)
        page.wait_for_load_state("networkidle")  # htmx fragments in place before the picture
        page.screenshot(path=console.screenshots / f"{name}.png", full_page=True)
    page.goto(PAGES["today"])
    assert page.locator("#warnings tbody tr").count() > 0
    # htmx (the vendored file, under the strict CSP) fills the health strip after the page.
    expect(page.locator("#health li")).to_have_count(4)
    expect(page.locator("#health")).to_contain_text("dead letters 0")
    page.goto(PAGES["segments"])
    expect(page.locator("#segments tbody tr").first).to_be_visible()
    # Counts and revenue: every segment of the replay has spent something, in dollars.
    revenue = page.locator("#segments tbody tr td:nth-child(3)").all_inner_texts()
    assert revenue
    assert all(cell.endswith(" USD") for cell in revenue), revenue
    assert page.locator("svg[role=img]").count() >= 5
    page.goto(PAGES["lifecycle"])
    total = int(page.locator("#stage-counts caption").inner_text().split("(")[1].split()[0])
    assert total == CUSTOMERS
    page.goto(PAGES["playbooks"])
    expect(page.locator("#rules")).to_contain_text("warning-retention-offer")
    assert sorted(p.name for p in console.screenshots.iterdir()) == sorted(
        f"{name}.png" for name in PAGES
    )


def test_the_warning_list_links_to_the_customer_page(page: Page, console: Console) -> None:
    log_in(page, console.admin_key)
    page.goto(PAGES["today"])
    first = page.locator("#warnings tbody tr").first.get_by_role("link")
    customer_id = first.inner_text()
    first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Customer {customer_id}")
    expect(page.locator("#stage-heading + p")).to_contain_text("Stage")
    assert page.locator("#health-components tbody tr").count() > 0
    page.screenshot(path=console.screenshots / "customer.png", full_page=True)


def test_a_customer_is_found_by_email_and_by_external_id(page: Page, console: Console) -> None:
    log_in(page, console.admin_key)
    for by, value in (("email", console.customer_email), ("external_id", "shop-ada-1")):
        page.goto("/customers")
        page.get_by_label("Search by").select_option(by)
        page.get_by_label("Value").fill(value)
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#profile-heading + table")).to_contain_text(console.customer_email)


def test_a_rule_edit_with_an_error_shows_the_services_message_at_the_field(
    page: Page, console: Console
) -> None:
    log_in(page, console.admin_key)
    page.goto(PAGES["rule-edit"])
    page.get_by_label("Delay after the event").fill("soon")
    page.get_by_role("button", name="Save rule").click()
    message = page.locator("#delay-error")
    expect(message).to_be_visible()
    assert message.inner_text().strip() != ""
    expect(page.get_by_label("Delay after the event")).to_have_attribute("aria-invalid", "true")
    with console.api("notification-service") as api:
        stored = api.get("/v1/rules/warning-retention-offer").json()
    assert stored["delay"] != "soon"


def test_a_read_key_cannot_save_a_rule(page: Page, console: Console) -> None:
    with console.api("notification-service") as api:
        before = api.get("/v1/rules/welcome-first-order").json()
    log_in(page, console.read_key)
    page.goto("/playbooks/rules/welcome-first-order")
    page.get_by_label("Name").fill("Renamed by a reader")
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_role("alert")).to_contain_text("admin")
    with console.api("notification-service") as api:
        assert api.get("/v1/rules/welcome-first-order").json() == before


def test_a_template_previews_for_a_real_customer(page: Page, console: Console) -> None:
    with console.api("notification-service") as api:
        template_id = api.get("/v1/rules/warning-retention-offer").json()["template_id"]
    log_in(page, console.admin_key)
    page.goto(f"/playbooks/templates/{template_id}")
    page.get_by_label("Preview for customer id").first.fill(console.customer_id)
    page.get_by_role("button", name="Preview").first.click()
    preview = page.locator("[id^=preview-] h3").first
    expect(preview).to_have_text(f"Preview for {console.customer_id}")


def test_lifecycle_rules_dry_run_over_the_base(page: Page, console: Console) -> None:
    log_in(page, console.admin_key)
    page.goto(PAGES["lifecycle-rules"])
    page.get_by_label("As of").fill(AS_OF)
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator("#dry-run h2")).to_contain_text(f"over {CUSTOMERS + 1} customers")


def test_a_form_without_the_csrf_token_is_refused(page: Page, console: Console) -> None:
    log_in(page, console.admin_key)
    refused = page.request.post(
        "/playbooks/rules/welcome-first-order", form={"name": "forged", "delay": "PT0S"}
    )
    assert refused.status == 403


def stage_label(stage: str | None) -> str:
    """A stage as the diagram names it: words, and "(new)" for a customer newly known."""
    return stage.replace("_", " ") if stage else "(new)"


def test_stage_moves_render_as_a_flow_diagram(page: Page, console: Console) -> None:
    log_in(page, console.admin_key)
    page.goto(PAGES["lifecycle"])
    with console.api("lifecycle-service") as api:
        day = date.fromisoformat(AS_OF)
        moves = api.get(
            "/v1/analytics/transitions",
            params={"from": (day - timedelta(days=89)).isoformat(), "to": AS_OF},
        ).json()["transitions"]
    assert moves, "the replay moves customers between stages"
    diagram = page.locator("svg#stage-flow")
    expect(diagram).to_be_visible()
    bands = diagram.locator("path.flow-band")
    expect(bands).to_have_count(len(moves))
    drawn = {
        (band.get_attribute("data-from"), band.get_attribute("data-to")): int(
            band.get_attribute("data-customers") or 0
        )
        for band in bands.all()
    }
    assert drawn == {
        (stage_label(m["from_stage"]), stage_label(m["to_stage"])): m["customers"] for m in moves
    }
    # Screen readers get a title, a description and the numbers as a table.
    expect(diagram.locator("title").first).to_contain_text("Stage moves")
    expect(diagram.locator("desc")).to_contain_text(f"{sum(drawn.values()):,} stage moves")
    expect(page.locator("#stage-moves tbody tr")).to_have_count(len(moves))


def test_the_open_warnings_export_downloads_as_csv(page: Page, console: Console) -> None:
    log_in(page, console.admin_key)
    page.goto("/exports")
    with page.expect_download() as started:
        page.get_by_role("link", name="Open churn warnings").click()
    download = started.value
    assert download.suggested_filename == "open-warnings.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    with console.api("lifecycle-service") as api:
        expected = api.get("/v1/warnings", params={"status": "open", "limit": 500}).json()
    assert {row["warning_id"] for row in rows} == {w["warning_id"] for w in expected["items"]}
    assert rows
    assert all(re.fullmatch(r"cdnow-\d{4}", row["customer_id"]) for row in rows)


def test_inputs_have_labels_and_pages_have_headings(page: Page, console: Console) -> None:
    log_in(page, console.admin_key)
    for path in PAGES.values():
        page.goto(path)
        unlabeled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter(e => e.type !== 'hidden' && e.labels.length === 0
                        && !e.getAttribute('aria-label'))
                .map(e => e.name || e.id)"""
        )
        assert unlabeled == [], f"{path}: inputs without a label: {unlabeled}"
        levels = page.evaluate(
            "() => [...document.querySelectorAll('h1, h2, h3, h4')].map(h => +h.tagName[1])"
        )
        # One h1 first, and no level skipped on the way down (an outline a reader can follow).
        assert levels[0] == 1, f"{path}: {levels}"
        assert levels.count(1) == 1, f"{path}: {levels}"
        assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), f"{path}: {levels}"
        assert page.locator("nav[aria-label=Main]").count() == 1, path


def test_the_main_lists_are_reachable_by_keyboard(page: Page, console: Console) -> None:
    log_in(page, console.admin_key)
    page.goto(PAGES["today"])
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    # Tab on until a link of the warning list has the focus, then open it with Enter.
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("!!document.activeElement.closest('#warnings')"):
            break
    else:
        pytest.fail("no link of the warning list took the keyboard focus")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Customer cdnow-")

    page.goto(PAGES["playbooks"])
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("!!document.activeElement.closest('#rules')"):
            break
    else:
        pytest.fail("no link of the rules list took the keyboard focus")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Rule ")
