"""The dashboard in a real browser: `edgefleet dashboard` serves it, headless Chromium renders its charts, and a tiny
simulation is launched, stopped and resumed from its Launch page."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import numpy as np
import psutil
import pytest

from dashboard import jobs
from edgefleet.results import Results
from edgefleet.rundir import COMPRESSION_REPORT, MODEL, SUMMARY
from server.recorder import round_row
from tests.dashboard.conftest import device_metrics, device_rows, write_sim

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                                   reason="chromium and chromium-driver come with `make` set-up")]
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ROUNDS = 30  # after the first (Ray warms up) a toy round takes about a second: time to stop before the last
CHART = "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(root):
    """`edgefleet dashboard --runs ROOT` on a free port, in a process group of its own (its jobs join it)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgefleet", "dashboard", "--runs", str(root), "--port",
                             str(port)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    try:
        yield port, line
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)


@pytest.fixture
def served(runs_root):
    with serve(runs_root) as found:
        yield found


@contextmanager
def chromium(height: int = 1800):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size=1400,{height}"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def keep(tmp_path, *names: str) -> None:
    """Copy screenshots to $EDGEFLEET_SCREENSHOT_DIR, to look at them after the test."""
    where = os.environ.get("EDGEFLEET_SCREENSHOT_DIR")
    if where:
        for name in names:
            shutil.copy(tmp_path / name, where)


def test_dashboard_renders_charts_in_chromium(served, runs_root, tmp_path):
    port, line = served
    assert f"http://localhost:{port}" in line
    with chromium() as browser:
        browser.get(f"http://localhost:{port}")
        wait = WebDriverWait(browser, 90)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, CHART)))
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
        open_page(browser, wait, "Accuracy")
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, CHART)) >= 3)
        assert "On-device vs global HR@10" in browser.page_source
        time.sleep(2)
        browser.save_screenshot(str(tmp_path / "accuracy.png"))
        keep(tmp_path, "runs.png", "live.png", "accuracy.png")


def toy_artifact(folder) -> None:
    """A tiny recommender artifact (as tests/client/conftest.py builds one) with a compression report beside it,
    so that the Launch page offers it: a simulation deploys it in seconds where `compress` would take minutes."""
    import torch

    from compression.distill.stages import StudentRec
    from compression.quant.export import exported_state, quantize_state
    from compression.runtime.artifact import write_artifact
    from compression.runtime.model import RUNTIME_KIND
    from compression.runtime.tokenizer import SPECIALS
    from compression.student import build_encoder
    from edgefleet.config import StudentConfig
    from edgefleet.tasks.movielens.teacher_head import RecHead

    torch.manual_seed(1)
    vocab = [*SPECIALS, "movie", "the", "of", "a", "love", "war", "story", "man", "night", "day", "##s"]
    cfg = StudentConfig(embed_dim=16, hidden=32, layers=2, heads=2, ffn=48)
    student = StudentRec(build_encoder(cfg, len(vocab), 16), RecHead(32, 8, 4, 0.1), teacher_hidden=64)
    config = {"runtime": RUNTIME_KIND, "student": cfg.model_dump(), "max_len": 16, "dim": 8, "history_len": 4}
    folder.mkdir(parents=True)
    size = write_artifact(folder / MODEL, config, vocab, quantize_state(exported_state(student), 8, 16))
    (folder / COMPRESSION_REPORT).write_text(json.dumps({"artifact_bytes": size, "artifact_path": MODEL}))


def flower_processes(run_dir) -> list[psutil.Process]:
    """Processes of the simulation in `run_dir` (Flower's and Ray's carry its FLWR_HOME)."""
    home, found = str((run_dir / "flwr").resolve()), []
    for p in psutil.process_iter():
        try:
            if p.environ().get("FLWR_HOME") == home:
                found.append(p)
        except psutil.Error:
            pass
    return found


def click(browser, text: str) -> None:
    browser.find_element(By.XPATH, f"//button[.//p[text()='{text}']]").click()


def open_page(browser, wait, page: str) -> None:
    """Pick `page` in the sidebar and wait for its heading."""
    wait.until(ec.element_to_be_clickable((By.XPATH, f"//*[@data-testid='stSidebar']//label[.//p[text()='{page}']]")))
    browser.find_element(By.XPATH, f"//*[@data-testid='stSidebar']//label[.//p[text()='{page}']]").click()
    wait.until(lambda b: page in [h.text for h in b.find_elements(By.CSS_SELECTOR, "h2")])


def job_text(browser) -> str:
    """The text of the Launch page's job boxes."""
    boxes = browser.find_elements(By.CSS_SELECTOR, "[class*='st-key-job-']")
    return " ".join(e.text for e in boxes)


def committed(browser) -> int:
    """The rounds the Launch page says the job has committed."""
    found = re.search(rf"(\d+) of {ROUNDS} rounds committed", job_text(browser))
    return int(found.group(1)) if found else 0


def test_launch_stop_resume_and_compare_in_chromium(tmp_path):
    """Start a simulation from the Launch page, see a round committed, stop it, resume it, and find every round once;
    then compare it with another run on the Compare page."""
    root = tmp_path / "runs"
    write_sim(root / "sim-a", rounds=3)
    toy_artifact(root / "compress-toy")
    run = root / "sim-browser"
    began = time.time()
    with serve(root) as (port, _), chromium(height=1500) as browser:
        try:
            browser.get(f"http://localhost:{port}")
            wait = WebDriverWait(browser, 120)
            open_page(browser, wait, "Launch")
            assert "127.0.0.1" in browser.page_source
            for label, value in (("Run name: a new directory under the runs folder", "sim-browser"),
                                 ("Devices", "20"), ("Rounds", str(ROUNDS)), ("Cohort (devices per round)", "4")):
                field = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"input[aria-label='{label}']")))
                field.send_keys(value, Keys.TAB)
            model = browser.find_element(By.CSS_SELECTOR, "input[aria-label^='Model']").get_attribute("value")
            assert model.startswith("compress-toy")  # the newest artifact is offered first
            click(browser, "Start")
            wait.until(lambda b: "Started simulate into" in b.page_source)

            # A round appears on the page while the run goes on.
            wait.until(lambda b: 0 < committed(b) < ROUNDS)
            assert "running" in job_text(browser)
            browser.save_screenshot(str(tmp_path / "launch.png"))
            click(browser, "Stop")
            wait.until(lambda b: b.find_elements(By.XPATH, "//button[.//p[text()='Resume']]"))
            stopped_after = Results(run).completed_rounds()
            assert 1 <= stopped_after < ROUNDS and not (run / SUMMARY).exists()
            # The job's log line comes from the CLI as it exits; the page shows it on a later refresh.
            wait.until(lambda b: "stopped" in job_text(b) and "interrupted after" in job_text(b))
            assert flower_processes(run) == []  # the CLI stopped everything it started
            browser.save_screenshot(str(tmp_path / "stopped.png"))

            click(browser, "Resume")
            wait = WebDriverWait(browser, 240)
            wait.until(lambda b: "finished" in job_text(b) and f"{ROUNDS} of {ROUNDS} rounds committed" in job_text(b))
            rounds, devices = Results(run).rounds(), Results(run).devices()
            every = list(range(1, ROUNDS + 1))
            assert list(rounds["round"]) == every and not devices.duplicated(["round", "device"]).any()
            assert sorted(devices["round"].unique()) == every and (run / SUMMARY).exists()
            assert flower_processes(run) == []
            print(f"launched, stopped after {stopped_after} round(s), resumed and finished in "
                  f"{time.time() - began:.0f} s")

            # Compare: the launched run beside another; a fresh page picks the newest simulation first.
            browser.get(f"http://localhost:{port}")
            open_page(browser, wait, "Compare")
            picker = "[data-testid='stSidebar'] [data-testid='stMultiSelect'] input"
            browser.find_element(By.CSS_SELECTOR, picker).send_keys("sim-a", Keys.ENTER, Keys.ESCAPE)
            wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, CHART)) >= 5)
            assert "Outcome mix per tier" in browser.page_source
            browser.set_window_size(1400, 3300)  # the whole page in the screenshot
            time.sleep(3)
            browser.save_screenshot(str(tmp_path / "compare.png"))
            keep(tmp_path, "launch.png", "stopped.png", "compare.png")
        finally:
            for job in jobs.read(root):  # a failed test leaves no simulation behind
                if jobs.alive(job):
                    os.kill(job.pid, signal.SIGTERM)
                    psutil.Process(job.pid).wait(timeout=60)
