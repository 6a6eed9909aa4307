"""End to end in a real headless browser: ``durr app`` on 127.0.0.1, driven by Playwright.

Needs Debian's chromium at /usr/bin/chromium (``scripts/install_browser.sh`` installs it; the
test is skipped, saying so, when it is absent). Playwright's own browser download is never used.

It uploads ``ct_spine.dcm``, presses Restore, waits for the result, checks the step count and
the downloaded DICOM, and saves a screenshot (``app.png`` in the test's temporary folder; also
``docs/app_screenshot.png`` when ``DURR_UPDATE_SCREENSHOT=1`` or when that file does not exist).
It serves the shipped ``models/ct-lowdose`` when the checkout has it, else a tiny untrained model.
Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("DURR_CHROMIUM", "/usr/bin/chromium"))
SAMPLE = ROOT / "datasets" / "samples" / "ct_spine.dcm"
SCREENSHOT = ROOT / "docs" / "app_screenshot.png"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 90
RESTORE_TIMEOUT_S = 240

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"chromium not installed at {CHROMIUM}: "
                                                      "run scripts/install_browser.sh"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def models_folder(tmp_path: Path) -> Path:
    """The checkout's models/ if it holds ct-lowdose, else a folder with a tiny untrained one."""
    shipped = ROOT / "models"
    if (shipped / "ct-lowdose" / "config.json").is_file():
        return shipped
    import torch

    from durr.control.restorer import DURR, DURRConfig
    from durr.control.unit import UnitConfig
    from durr.infer import save_model

    torch.manual_seed(0)
    folder = tmp_path / "models"
    save_model(folder / "ct-lowdose", DURR(DURRConfig(modality="CT", family="ct-lowdose", max_steps=6,
                                                      unit=UnitConfig(channels=4, depth=3))))
    return folder


@pytest.fixture
def server(tmp_path):
    """``durr app`` on a free loopback port, in its own process group; stopped afterwards."""
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "durr", "app", "--port", str(port),
                                    "--models", str(models_folder(tmp_path))],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"durr app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"durr app did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, log
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if process.poll() is not None:
                break
            try:
                os.killpg(process.pid, sig)  # the group started above: durr app and its streamlit
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass


def test_upload_restore_download_screenshot(server, tmp_path):
    import pydicom
    from playwright.sync_api import expect, sync_playwright

    url, log = server
    expect.set_options(timeout=90_000)  # the first page run imports torch: seconds on a busy CPU
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1480}, accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(url, timeout=60_000)
            expect(page.get_by_text("DURR: CT and MR restoration")).to_be_visible()
            page.locator("input[type=file]").set_input_files(str(SAMPLE))
            expect(page.get_by_text("512 x 512 voxels")).to_be_visible()

            page.get_by_role("button", name="Restore", exact=True).click()
            steps = page.locator('[data-testid="stMetric"]').filter(has_text="Steps chosen by the policy")
            expect(steps).to_be_visible(timeout=RESTORE_TIMEOUT_S * 1000)
            download = page.get_by_role("button", name=re.compile("Download the restored scan"))
            expect(download).to_be_visible(timeout=RESTORE_TIMEOUT_S * 1000)
            expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=RESTORE_TIMEOUT_S * 1000)
            value = steps.locator('[data-testid="stMetricValue"]').inner_text().strip()
            assert value.isdigit(), value
            assert page.get_by_text("Traceback").count() == 0

            page.wait_for_timeout(500)  # let the images finish painting
            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=True)

            with page.expect_download(timeout=60_000) as info:
                download.click()
            saved = tmp_path / info.value.suggested_filename
            info.value.save_as(saved)
            assert saved.name == "ct_spine_restored.dcm"
            ds, source = pydicom.dcmread(saved), pydicom.dcmread(SAMPLE)
            assert (ds.Rows, ds.Columns, ds.PixelSpacing) == (source.Rows, source.Columns, source.PixelSpacing)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("DURR_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    assert "Traceback" not in log.read_text()
