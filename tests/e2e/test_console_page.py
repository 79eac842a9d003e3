"""The console's page in a real headless Chromium (Debian's chromium + chromium-driver,
installed by .ci/run): it loads without console errors, shows every container of the
demo, shows hostile names as text, and an event that happens while it is open appears
without a reload.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console_demo import (
    HOSTILE_NAME,
    SCENARIO,
    TOKEN,
    ConsoleDemo,
    publish_hostile_sample,
    run_console_demo,
    second_console,
)

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags for this machine's closed network (docs: /work/.library/env/machines/python.md).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--window-size=1400,1150",
)  # fmt: skip
SCREENSHOT = os.environ.get("CONSOLE_SCREENSHOT")  # set to refresh docs/console.png


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDemo]:
    yield from run_console_demo(tmp_path_factory.mktemp("console-page"))


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromium-driver must be installed in CI (.ci/run installs them)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver: Any, what: str, check: Any, timeout_s: float = 30.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(lambda d: check(d), message=what)


def _rows(driver: Any) -> list[str]:

    # One script call: the live page re-renders rows, so element handles can go stale between calls.
    keys: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#containers tbody tr'), r => r.dataset.key);"
    )
    return keys


def _group_reason(console_url: str) -> str:
    with urllib.request.urlopen(console_url + "api/v1/groups", timeout=10) as response:
        [group] = json.loads(response.read())
    reason: str = group["decision"]["reason"]
    return reason


def _text(driver: Any, selector: str) -> str:
    text: str = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector
    )
    return text


def test_the_page_shows_every_container_and_a_new_event_without_reload(
    demo: ConsoleDemo, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    publish_hostile_sample(demo.broker.url)
    browser.get(demo.url)
    expected = [f"pve1/{c['vmid']}" for c in SCENARIO["containers"]]
    _wait(browser, "every demo container", lambda d: set(expected) <= set(_rows(d)))
    _wait(browser, "the live stream", lambda d: d.find_element(By.ID, "live").text == "live")
    _wait(browser, "the hostile node", lambda d: "hostile/990" in _rows(d))

    # The hostile name is text: no element was made of it and no script ran.
    text, children = browser.execute_script(
        "const c = document.querySelector('tr[data-key=\"hostile/990\"] td:nth-child(2)');"
        "return [c.innerText, c.children.length];"
    )
    assert text == HOSTILE_NAME
    assert children == 0
    assert browser.title == "LXC AutoScale console"

    # An event while the page is open: a rollback of the container the demo shrank.
    demo.wait_for("web3 to have shrunk", lambda: demo.get("/api/v1/containers/pve1/103")["size"]["cores"] < 4)
    marker = browser.execute_script("window.__sameDocument = true; return window.__sameDocument;")
    assert marker is True
    reply = demo.request("/api/v1/rollback", {"node": "pve1", "vmid": 103}, token=TOKEN)
    assert reply.status == 200 and reply.json()["requested"], reply.body
    intent = reply.json()["intent_id"]
    item_text = _wait(
        browser, "the rollback's event in the list",
        lambda d: d.execute_script(
            "const li = document.querySelector(`#events li[data-event^=\"${arguments[0]}\"]`);"
            "return li ? li.innerText : null;", intent,
        ),
    )  # fmt: skip
    assert "pve1/103" in item_text and "restore the size saved" in item_text
    assert browser.execute_script("return window.__sameDocument === true;"), "the page was reloaded"

    # Both CPU figures, and the operator's switches as they change, still without a reload.
    cpu_cell = browser.execute_script(
        "return document.querySelector('tr[data-key=\"pve1/101\"] td:nth-child(4)').innerText;"
    )
    assert "Proxmox: " in cpu_cell and "%" in cpu_cell.split("Proxmox: ")[1]
    _wait(browser, "the acting badge", lambda d: _text(d, "#mode") == "acting (dry-run off)")
    if SCREENSHOT:
        browser.save_screenshot(SCREENSHOT)
    assert demo.request("/api/v1/dry-run", {"switch": "on"}, token=TOKEN).status == 200
    assert demo.request("/api/v1/pause", {"node": "pve1", "mode": "scale-down"}, token=TOKEN).status == 200
    _wait(browser, "the dry-run badge", lambda d: _text(d, "#mode") == "DRY RUN: nothing is applied")
    _wait(browser, "the node's pause", lambda d: "paused (scale-down)" in _text(d, '[data-node="pve1"]'))
    assert browser.execute_script("return window.__sameDocument === true;"), "the page was reloaded"
    assert demo.request("/api/v1/dry-run", {"switch": "config"}, token=TOKEN).status == 200
    assert demo.request("/api/v1/resume", {"node": "pve1"}, token=TOKEN).status == 200
    _wait(browser, "the acting badge again", lambda d: _text(d, "#mode") == "acting (dry-run off)")
    assert browser.execute_script("return document.getElementById('groups-section').hidden;") is True
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors

    # A console whose configuration has a horizontal group (web2 as its source) shows it:
    # its members and what the deciders would decide for it now, as its API says.
    with second_console(demo, "HORIZONTAL_SCALING_GROUP_web2s:\n  base_snapshot_name: 102\n") as url:
        browser.get(url)
        card = _wait(browser, "the group card", lambda d: _text(d, "[data-group=web2s]") or None)
        assert "pve1/102 web2 running (source" in card and "min 1, max 5" in card
        shown = "[data-group=web2s]"
        _wait(browser, "the deciders' decision on the card", lambda d: _group_reason(url) in _text(d, shown))
        browser.get("about:blank")  # leave before that console stops, so its stream is not cut
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
