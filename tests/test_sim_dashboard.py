"""The simulation dashboard in a real headless browser (Debian's chromium, driven by selenium through Debian's
chromedriver), served by the orchestration service against a fake Kubernetes API: it lists the instances and
their state, its buttons start and stop them, and the screenshot shows it.

PIXELSTREAM_DASHBOARD_PNG=docs/simulation-dashboard.png writes the final screenshot there (docs/simulation.md shows
it)."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fake_fleet import FakeFleet
from fake_kube import serve, start_program
from PIL import Image
from test_sim_orchestrator import AUTHORIZATION, SIM_APP, STREAMS, environment
from tools import require

pytestmark = pytest.mark.slow

# The flags that run this chromium here: no sandbox (containers), no GPU, nothing fetched in the background.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,820",
    "--force-device-scale-factor=1",
)
# Colours the page gives each state's badge (dashboard.html).
BADGE = {"running": (0xD1, 0xFA, 0xDF), "starting": (0xFE, 0xF0, 0xC7), "stopped": (0xEA, 0xEC, 0xF0)}


def _stream_server(framed: str = "") -> tuple[ThreadingHTTPServer, str]:
    """Stands in for the instances' pages behind /sim/<i>/: a coloured page naming the instance. At /framing, a page
    of this (other) origin that frames `framed` and, as a control, its own /sim/0/."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"<body style='margin:0;background:#2e90fa;color:#fff;font:32px sans-serif'>stream {self.path}"
            if self.path == "/framing":
                body = f"<iframe id='framed' src='{framed}'></iframe><iframe id='control' src='/sim/0/'></iframe>"
            payload = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    chromium = require("chromium", "chromium")
    driver_path = require("chromedriver", "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(executable_path=driver_path), options=options)
    # The operator's credential on every request, as the browser sends it once signed in (headless, no prompt).
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": AUTHORIZATION}})
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the dashboard did not show {what} within {seconds} s")
        time.sleep(0.1)


def states(driver) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        card.find_element(By.TAG_NAME, "h2").text: card.find_element(By.CLASS_NAME, "state").text
        for card in driver.find_elements(By.CSS_SELECTOR, "section.card")
    }


def colour_at(shot: Image.Image, element, dx: int = 4, dy: int = 4) -> tuple[int, int, int]:
    """The screenshot's colour just inside `element`'s top-left corner (its background, not its text)."""
    rect = element.rect
    return shot.getpixel((int(rect["x"]) + dx, int(rect["y"]) + dy))[:3]


def close(colour: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 6 for a, b in zip(colour, expected, strict=True))


def test_the_dashboard_lists_the_fleet_and_starts_and_stops_instances(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    fleet = FakeFleet(instances=3)
    with serve(fleet.routes()) as kube:
        process, url = start_program(SIM_APP / "sim_orchestrator.py", environment(kube.env(tmp_path)), "/healthz")
        try:
            browser.get(url + "/")
            wait_for(lambda: len(states(browser)) == 3, "three instances")
            assert states(browser) == {"sim-0": "running", "sim-1": "stopped", "sim-2": "stopped"}
            card = browser.find_element(By.CSS_SELECTOR, "section.card[data-instance='1']")
            assert card.find_element(By.CSS_SELECTOR, "button.stop").get_attribute("disabled") is not None

            card.find_element(By.CSS_SELECTOR, "button.start").click()
            wait_for(lambda: states(browser)["sim-1"] == "running", "sim-1 running after Start")
            browser.find_element(By.CSS_SELECTOR, "section.card[data-instance='0'] button.stop").click()
            wait_for(lambda: states(browser)["sim-0"] == "stopped", "sim-0 stopped after Stop")
            assert [(c.method, c.path.split("/")[-2], c.body) for c in kube.calls if c.method == "PATCH"] == [
                ("PATCH", "sim-1", {"spec": {"replicas": 1}}),
                ("PATCH", "sim-0", {"spec": {"replicas": 0}}),
            ]
            _check_streams(browser)
            wait_for(lambda: browser.find_element(By.ID, "summary").text == "1 of 3 running", "the summary")
            fleet.set(2, running=True, ready=False)  # started elsewhere; the app not ready yet
            wait_for(lambda: states(browser)["sim-2"] == "starting", "sim-2 starting from the next refresh")
            _check_screenshot(browser)
        finally:
            process.terminate()
            process.wait(timeout=5)


def _check_streams(browser) -> None:
    """Each card says where its instance's stream is; a running one with a viewer opens it in a tab of its own."""
    from selenium.webdriver.common.by import By

    def stream(index: int):
        return browser.find_element(By.CSS_SELECTOR, f"section.card[data-instance='{index}'] .stream")

    wait_for(lambda: stream(1).find_elements(By.CSS_SELECTOR, "a.viewer"), "sim-1's viewer link")
    [link] = stream(1).find_elements(By.CSS_SELECTOR, "a.viewer")
    assert link.get_attribute("href") == STREAMS[1]["viewerUrl"]
    assert (link.get_attribute("target"), link.get_attribute("rel")) == ("_blank", "noopener noreferrer")
    endpoint = stream(1).find_element(By.CLASS_NAME, "endpoint").text
    assert endpoint == "203.0.113.11 · signalling 49100/TCP · media 47998/UDP"
    assert not stream(0).find_elements(By.CSS_SELECTOR, "a.viewer"), "stopped: no viewer"
    assert "stopped: start it to stream" in stream(0).text
    assert stream(2).text.startswith("not published"), "no load balancer: viewers only inside the cluster"


def test_no_page_elsewhere_can_frame_the_dashboard(browser, tmp_path: Path) -> None:
    """A page of another origin frames the dashboard and, as a control, a page that allows it: the control loads,
    the dashboard does not (frame-ancestors 'none', X-Frame-Options DENY), so no page can overlay its buttons."""
    from selenium.webdriver.common.by import By

    with serve(FakeFleet(instances=3).routes()) as kube:
        process, url = start_program(SIM_APP / "sim_orchestrator.py", environment(kube.env(tmp_path)), "/healthz")
        other, other_url = _stream_server(framed=url + "/")
        try:
            browser.get(other_url + "/framing")

            def loaded(frame: str) -> str:
                """The URL of the document in `frame` once it has loaded, else ""."""
                browser.switch_to.default_content()
                browser.switch_to.frame(browser.find_element(By.ID, frame))
                return browser.execute_script("return document.readyState === 'complete' ? document.URL : ''")

            wait_for(lambda: loaded("control") == other_url + "/sim/0/", "the control frame loaded")
            wait_for(lambda: loaded("framed") not in ("", "about:blank"), "the framed dashboard's answer")
            assert loaded("framed") != url + "/" and not browser.find_elements(By.ID, "instances")
        finally:
            process.terminate()
            process.wait(timeout=5)
            other.shutdown()


def _check_screenshot(browser) -> None:
    """What the screenshot shows: each card's badge in its state's colour."""
    from selenium.webdriver.common.by import By

    png = browser.get_screenshot_as_png()
    shot = Image.open(io.BytesIO(png)).convert("RGB")
    expected = {"0": "stopped", "1": "running", "2": "starting"}
    for index, state in expected.items():
        card = browser.find_element(By.CSS_SELECTOR, f"section.card[data-instance='{index}']")
        badge = colour_at(shot, card.find_element(By.CLASS_NAME, "state"), dx=3, dy=9)
        assert close(badge, BADGE[state]), (index, state, badge)
    target = os.environ.get("PIXELSTREAM_DASHBOARD_PNG")
    if target:
        Path(target).write_bytes(png)


def test_a_viewer_link_that_is_not_https_is_never_made(browser, tmp_path: Path) -> None:
    """The stack refuses such a viewer URL; should one reach the page anyway, it is shown as no link at all."""
    from selenium.webdriver.common.by import By

    hostile = [{**STREAMS[1], "viewerUrl": "javascript:document.title='owned'"}, STREAMS[1], None]
    with serve(FakeFleet(instances=3).routes()) as kube:
        env = {**environment(kube.env(tmp_path)), "STREAMS": json.dumps(hostile)}
        process, url = start_program(SIM_APP / "sim_orchestrator.py", env, "/healthz")
        try:
            browser.get(url + "/")
            wait_for(lambda: states(browser).get("sim-0") == "running", "sim-0 running")
            box = browser.find_element(By.CSS_SELECTOR, "section.card[data-instance='0'] .stream")
            assert box.find_elements(By.CLASS_NAME, "endpoint") and not box.find_elements(By.TAG_NAME, "a")
            assert browser.title == "Simulation fleet"
        finally:
            process.terminate()
            process.wait(timeout=5)
