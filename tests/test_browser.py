"""JupyterLab as a learner meets it, in a real browser (headless Chromium driven by Selenium).

Starts JupyterLab the way the README does (repository as root, on 127.0.0.1, a free port, a random
token), then for notebooks 01, 02 and 07: the tab is not marked modified once the kernel is connected;
*Restart Kernel and Run All Cells* runs every code cell with no error and no stderr output, and the
figures render. It also opens README.md from the file browser. Screenshots go to screenshots/ (ignored
by git) for a reviewer. Needs Debian's chromium and chromium-driver and `pip install -r
requirements-browser.txt`; without them the test is skipped and says why. No request leaves 127.0.0.1.
"""
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "screenshots"
NOTEBOOKS = ("01_data_preprocessing.ipynb", "02_linear_regression_from_scratch.ipynb", "07_choosing_a_gpu.ipynb")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = pytest.mark.browser


def _missing() -> str:
    if not (CHROMIUM and CHROMEDRIVER):
        return "no chromium/chromedriver on PATH (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements-browser.txt)"
    return ""


if _missing():
    pytest.skip(f"browser test skipped: {_missing()}", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("jupyter")
    news = home / "settings" / "@jupyterlab" / "apputils-extension"      # no "get Jupyter news?" toast
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--ServerApp.root_dir=.", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}", "--allow-root", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.expose_app_in_browser=True"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start within 60 s")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={home / 'chromium'}", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    SHOTS.mkdir(exist_ok=True)
    try:
        yield driver, base, token
    finally:
        driver.quit()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait(driver, what, seconds=60, message=""):
    return WebDriverWait(driver, seconds, poll_frequency=0.5).until(lambda d: what(d), message)


def _kernel_idle(driver):
    return driver.execute_script(
        "const w = window.jupyterapp.shell.currentWidget;"
        "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.connectionStatus === 'connected'"
        " && w.sessionContext.session.kernel.status === 'idle');")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_opens_clean_and_runs_all(lab, name):
    driver, base, token = lab
    driver.get(f"{base}/lab/tree/notebooks/{name}?token={token}")
    _wait(driver, lambda d: d.execute_script("return !!window.jupyterapp && !!window.jupyterapp.shell.currentWidget"
                                             " && window.jupyterapp.shell.currentWidget.title.label === arguments[0]",
                                             name), 90)
    _wait(driver, _kernel_idle, 90)
    time.sleep(1)                                  # JupyterLab rewrites metadata right after the kernel connects
    dirty = driver.execute_script("return window.jupyterapp.shell.currentWidget.context.model.dirty;")
    assert not dirty, f"{name} is marked modified as soon as it opens (kernelspec or stored form differ)"
    driver.execute_script("window.jupyterapp.commands.execute('notebook:restart-run-all');")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"), 30)[0].click()
    n_code = driver.execute_script("return window.jupyterapp.shell.currentWidget.content.widgets"
                                   ".filter(c => c.model.type === 'code').length;")

    def all_ran(d):
        counts = d.execute_script("return window.jupyterapp.shell.currentWidget.content.widgets"
                                  ".filter(c => c.model.type === 'code').map(c => c.model.executionCount);")
        return len(counts) == n_code and all(isinstance(c, int) for c in counts) and counts == list(
            range(1, n_code + 1)) and _kernel_idle(d)
    _wait(driver, all_ran, 300)
    errors = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type="
                                                   "'application/vnd.jupyter.stderr']")
    assert not errors, f"{name}: stderr or an error in an output: {errors[0].text[:300]}"
    images = driver.execute_script(
        "return Array.from(document.querySelectorAll('.jp-OutputArea-output img'))"
        ".map(i => i.complete && i.naturalWidth > 0);")
    assert images and all(images), f"{name}: {images.count(False)} of {len(images)} figures did not render"
    driver.save_screenshot(str(SHOTS / f"{name[:2]}_after_run_all_top.png"))
    shown = driver.execute_script(                 # in this notebook's tab, not in a tab opened before it
        "const all = window.jupyterapp.shell.currentWidget.node.querySelectorAll("
        "'.jp-OutputArea-output table, .jp-OutputArea-output img');"
        "for (const e of all) { e.scrollIntoView({block: 'center'}); if (e.getBoundingClientRect().width > 0)"
        " return e; } return null;")
    assert shown is not None, f"{name}: no table or figure is visible"
    time.sleep(0.5)
    shown.screenshot(str(SHOTS / f"{name[:2]}_first_table_or_figure.png"))
    # leave the file as committed: forget this run's outputs, shut the kernel down, close the tab unsaved
    driver.execute_script("const w = window.jupyterapp.shell.currentWidget;"
                          "w.context.model.dirty = false; w.sessionContext.shutdown().then(() => w.dispose());")


def test_readme_opens_from_the_file_browser(lab):
    driver, base, token = lab
    driver.get(f"{base}/lab?token={token}")
    _wait(driver, lambda d: d.execute_script("return !!window.jupyterapp"), 90, "JupyterLab did not load")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-DirListing-item"), 60, "no file browser")
    driver.execute_script("window.jupyterapp.commands.execute('filebrowser:go-to-path', {path: '/'});")
    def open_readme(d):                            # the listing re-renders while it loads: find it anew each try
        try:
            items = [e for e in d.find_elements(By.CSS_SELECTOR, ".jp-DirListing-item")
                     if e.text.split("\n")[0].strip() == "README.md"]
            if items:
                ActionChains(d).double_click(items[0]).perform()
                return True
            d.execute_script("window.jupyterapp.commands.execute('filebrowser:go-to-path', {path: '/'});")
        except StaleElementReferenceException:
            pass
        return False
    _wait(driver, open_readme, 30, "README.md not found in the file browser at the root")
    _wait(driver, lambda d: d.execute_script("const w = window.jupyterapp.shell.currentWidget;"
                                             "return !!w && w.title.label === 'README.md';"), 30,
          "README.md did not open")
    time.sleep(1)
    driver.save_screenshot(str(SHOTS / "README_opened.png"))
