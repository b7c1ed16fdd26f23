"""The dashboard in a real browser: `edgefleet dashboard` serves it, headless Chromium renders its charts."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from edgefleet.results import Results
from server.recorder import round_row
from tests.dashboard.conftest import device_metrics, device_rows

pytestmark = pytest.mark.slow
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(runs_root):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgefleet", "dashboard", "--runs", str(runs_root), "--port",
                             str(port)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    yield port, line
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=20)


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromium-driver come with `make` set-up")
def test_dashboard_renders_charts_in_chromium(served, runs_root, tmp_path):
    port, line = served
    assert f"http://localhost:{port}" in line
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        browser.get(f"http://localhost:{port}")
        wait = WebDriverWait(browser, 90)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid='stVegaLiteChart'] canvas, "
                                                                    "[data-testid='stVegaLiteChart'] svg")))
        assert browser.title == "EdgeFleet"
        headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "h2")]
        assert "Runs" in headers
        charts = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stVegaLiteChart']")
        assert len(charts) >= 1
        browser.save_screenshot(str(tmp_path / "runs.png"))
        assert browser.find_elements(By.XPATH, "//*[contains(text(), 'Traceback')]") == []
        print(f"browser saw title={browser.title!r} headers={headers} charts={len(charts)}; "
              f"screenshot {tmp_path / 'runs.png'}")

        # Live: a round committed while the page is open appears without reloading it.
        assert "1 round(s) committed" in browser.page_source
        live = runs_root / "sim-live"
        devices = device_rows(2, np.random.default_rng(1))
        row = round_row(2, devices, 40, 2.5, {"hr@10": 0.6, "ndcg@10": 0.3}, 1.0, device_metrics())
        Results(live).commit_round(2, devices, row, {"w": np.zeros(2)})
        WebDriverWait(browser, 30).until(lambda b: "2 round(s) committed" in b.page_source)
        time.sleep(2)  # let the chart redraw too before the screenshot
        browser.save_screenshot(str(tmp_path / "live.png"))

        # Another page: the Accuracy page draws the run's metrics under its task's labels.
        browser.find_element(By.XPATH, "//*[@data-testid='stSidebar']//label[.//p[text()='Accuracy']]").click()
        wait.until(lambda b: "Accuracy" in [h.text for h in b.find_elements(By.CSS_SELECTOR, "h2")])
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "[data-testid='stVegaLiteChart'] canvas, "
                                                                   "[data-testid='stVegaLiteChart'] svg")) >= 3)
        assert "On-device vs global HR@10" in browser.page_source
        time.sleep(2)
        browser.save_screenshot(str(tmp_path / "accuracy.png"))
        keep = os.environ.get("EDGEFLEET_SCREENSHOT_DIR")  # to look at them after the test
        if keep:
            for name in ("runs.png", "live.png", "accuracy.png"):
                shutil.copy(tmp_path / name, keep)
    finally:
        browser.quit()
