#!/usr/bin/env python3
"""Loads the admin dashboard in headless Chromium (Selenium) and prints what it shows as JSON.

Usage: check-dashboard.py URL SCREENSHOT [MIN_UPDATES]

Waits until the page has refreshed from /admin/stats at least MIN_UPDATES times (default 3)
and the chart holds at least two points (or the page shows an error), then prints {"figures": {id: data-value}, "stages":
[...], "points": n, "chart_pixels": n, "status": text} and saves a screenshot. Exits 2 with a
message on stderr when the page shows an error or does not render within 30 s. Used by the EndToEndTests'
AdminDashboardBrowserTests; scripts/setup-browser.sh installs what it needs.
"""
import json
import os
import shutil
import sys

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

FIGURES = [
    "connections-websocket", "connections-longpoll", "users-online", "messages-per-second",
    "messages-accepted", "messages-rejected", "frames-in", "frames-out", "store-messages",
    "store-inbox-entries", "store-bytes", "uptime",
]


def find(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def main():
    url, screenshot = sys.argv[1], sys.argv[2]
    min_updates = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    options = Options()
    browser = find("chromium", "chromium-browser", "google-chrome")
    if browser:
        options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    # An explicit driver path keeps Selenium Manager from looking for (downloading) one.
    driver_path = find("chromedriver") or "/usr/bin/chromedriver"
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(url)
        try:
            # Rendered, or stopped on an error (a wrong token shows one at once).
            WebDriverWait(driver, 30, poll_frequency=0.1).until(
                lambda d: d.execute_script(
                    "return (Number(document.body.dataset.updates) >= arguments[0]"
                    " && Number(document.getElementById('chart').dataset.points) >= 2)"
                    " || document.getElementById('status').classList.contains('error')", min_updates))
        except TimeoutException:
            pass
        rendered = driver.execute_script(
            "return Number(document.body.dataset.updates) >= arguments[0]"
            " && Number(document.getElementById('chart').dataset.points) >= 2", min_updates)
        if not rendered:
            status = driver.execute_script("return document.getElementById('status').textContent")
            print(f"the dashboard did not render (status: {status!r})", file=sys.stderr)
            os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
            driver.save_screenshot(screenshot)
            return 2
        result = driver.execute_script(
            """
            const figures = {};
            for (const id of arguments[0]) { figures[id] = document.getElementById(id).dataset.value; }
            const stages = Array.from(document.querySelectorAll('#stages-body tr')).map(row => ({
              name: row.dataset.stage,
              processed: Number(row.querySelector('.processed').dataset.value),
              p50_us: Number(row.querySelector('.p50').dataset.value),
            }));
            const canvas = document.getElementById('chart');
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            // Pixels of the two series' colours (blue, green), not the grid's grey.
            let drawn = 0;
            for (let i = 0; i < pixels.length; i += 4) {
              const [r, g, b, a] = [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]];
              if (a > 0 && ((b > 150 && r < 120) || (g > 120 && r < 80 && b < 130))) { drawn += 1; }
            }
            return {
              figures: figures, stages: stages, points: Number(canvas.dataset.points), chart_pixels: drawn,
              status: document.getElementById('status').textContent,
              updates: Number(document.body.dataset.updates),
              url: location.href,
            };
            """, FIGURES)
        os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
        driver.save_screenshot(screenshot)
        print(json.dumps(result))
        return 0
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
