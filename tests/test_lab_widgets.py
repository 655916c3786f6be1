"""JupyterLab >= 4.4 in headless Chromium: with "kernel subshells" advertised, JupyterLab sends
widget comm messages on a subshell; a slider moved while a cell loops is seen by the loop.

Needs jupyterlab, playwright (the Python package; its own browsers are not needed) and a
Chromium binary (Debian's `chromium`, or $GEOKERNEL_CHROMIUM); skipped when one is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

pytest.importorskip("jupyterlab")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("GEOKERNEL_CHROMIUM") or shutil.which("chromium") or \
    shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium binary", allow_module_level=True)

CELLS = [
    "import ipywidgets as w, time\nslider = w.IntSlider(0, max=10)\nslider",
    "t0 = time.time()\nprint('looping', flush=True)\n"
    "while slider.value == 0 and time.time() - t0 < 60:\n    time.sleep(0.05)\n"
    "import threading\n"
    "print('loop saw', slider.value, 'subshells', len(get_ipython().kernel.subshells.ids()),"
    " 'threads', threading.active_count())",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
                     "outputs": [], "source": src} for i, src in enumerate(CELLS)],
          "metadata": {"kernelspec": {"name": "geokernel", "display_name": "geokernel",
                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (root / "slider.ipynb").write_text(json.dumps(nb))
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / "config")}  # no user settings
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--ServerApp.port_retries=0", "--allow-root", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("jupyter lab did not start: "
                                       + (root / "server.log").read_text()[-2000:])
                time.sleep(0.3)
        yield url, token
    finally:
        # shut down kernels through the server, then the server itself
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_slider_moved_while_a_loop_runs_is_seen_by_the_loop(lab):
    url, token = lab
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{url}/lab/tree/slider.ipynb?token={token}")
            # the status bar names the kernel once it is connected and idle
            page.get_by_text("(geokernel) | Idle").wait_for(timeout=90_000)
            cells = page.locator(".jp-Notebook .jp-Cell")
            cells.nth(0).click()
            page.keyboard.press("Shift+Enter")  # the slider
            handle = page.locator(".widget-slider .noUi-handle").first
            handle.wait_for(timeout=60_000)
            page.keyboard.press("Shift+Enter")  # the loop (the next cell is selected)
            outputs = cells.nth(1).locator(".jp-OutputArea-output")
            outputs.filter(has_text="looping").wait_for(timeout=60_000)
            handle.focus()
            for _ in range(3):
                page.keyboard.press("ArrowRight")  # the slider moves: comm_msg on a subshell
            done = outputs.filter(has_text="loop saw")
            done.wait_for(timeout=60_000)
            text = done.inner_text()
        finally:
            # what the page showed last (a person's view of a failure)
            page.screenshot(path=os.path.join(os.environ.get("GEOKERNEL_LAB_SHOTS", "/tmp"),
                                              "geokernel-lab-slider.png"))
            browser.close()
    words = text.split()
    saw = int(words[words.index("saw") + 1])
    assert saw > 0, text  # the loop saw the move (else it would have waited 60 s and saw 0)
    assert int(words[words.index("subshells") + 1]) >= 1, text  # JupyterLab made a subshell
    assert int(words[words.index("threads") + 1]) == 1, text
