"""Screenshot a Superset dashboard in headless Chromium; runs with the Superset venv's Python (Selenium).

Usage: python screenshot.py BASE_URL SLUG OUTPUT.png  (SUPERSET_USER / SUPERSET_PASSWORD in the environment)

Logs in through the real login form, opens the dashboard standalone, waits until every chart has rendered
(no spinner left, an SVG/canvas/table in each chart) and saves a full-page PNG. Prints a JSON report: charts
found, charts rendered, the text of any chart showing an error, and charts showing "No results". Exit 1 when a
chart did not render, failed or is empty.
"""

from __future__ import annotations

import json
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROME_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1600,1800", "--lang=en-US",
)  # fmt: skip

USERNAME_INPUT = "input#username, input[name=username]"
PASSWORD_INPUT = "input#password, input[name=password]"

# Per chart holder: its id, title, whether it drew something (SVG, canvas or table) and any error alert text.
STATE_SCRIPT = """
return Array.from(document.querySelectorAll('.dashboard-component-chart-holder')).map(function (holder) {
  var match = holder.className.match(/dashboard-chart-id-(\\d+)/);
  var title = holder.querySelector('[data-test=editable-title], .header-title, .editable-title');
  var chart = holder.querySelector('.chart-container');
  var error = holder.querySelector('.ant-alert-error, [role=alert]');
  return {
    id: match ? Number(match[1]) : null,
    name: title ? title.innerText : '',
    loading: holder.querySelector('.loading, [aria-label=Loading], .ant-spin-spinning') !== null,
    rendered: chart !== null && chart.querySelector('svg, canvas, table') !== null,
    error: error ? error.innerText : null,
    empty: /No results were returned|No data/.test(holder.innerText),
  };
});
"""
PAGE_HEIGHT_SCRIPT = (
    "return Math.max.apply(null, Array.from(document.querySelectorAll('*')).map(e => e.scrollHeight))"
)


def main(base_url: str, slug: str, output: str, timeout_s: float = 90.0) -> int:
    """Log in, open the dashboard, wait for every chart, save the PNG; the process exit code."""
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        wait = WebDriverWait(driver, timeout_s)
        driver.get(f"{base_url}/login/")
        # Superset 6.1's React login form has id=username/password (older ones: name=...)
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, USERNAME_INPUT)))
        driver.find_element(By.CSS_SELECTOR, USERNAME_INPUT).send_keys(
            os.environ.get("SUPERSET_USER", "admin")
        )
        driver.find_element(By.CSS_SELECTOR, PASSWORD_INPUT).send_keys(os.environ["SUPERSET_PASSWORD"])
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/login" not in d.current_url)
        driver.get(f"{base_url}/superset/dashboard/{slug}/?standalone=1")
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".chart-container")))
        deadline = time.monotonic() + timeout_s
        states: list[dict] = []
        while time.monotonic() < deadline:
            states = driver.execute_script(STATE_SCRIPT)
            if states and all(s["error"] or (s["rendered"] and not s["loading"]) for s in states):
                break
            time.sleep(1)
        time.sleep(2)  # let ECharts finish its entry animation
        for _ in range(3):  # grow the window to the whole dashboard (its grid scrolls inside the page)
            height = driver.execute_script(PAGE_HEIGHT_SCRIPT)
            if height <= driver.get_window_size()["height"] - 40:
                break
            driver.set_window_size(1600, int(height) + 160)
            time.sleep(2)
        states = driver.execute_script(STATE_SCRIPT)
        driver.save_screenshot(output)
    finally:
        driver.quit()
    report = {
        "charts": len(states),
        "rendered": sum(1 for s in states if s["rendered"] and not s["error"]),
        "errors": [s for s in states if s["error"]],
        "not_rendered": [s["name"] for s in states if not s["rendered"]],
        "empty": [s["name"] for s in states if s["empty"]],
    }
    print(json.dumps(report))
    return 0 if states and not report["errors"] and not report["not_rendered"] and not report["empty"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3]))
