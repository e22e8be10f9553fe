"""Drives `pss board` (served by `pss serve --board`) in Debian's Chromium over
WebDriver: every tab loads without console errors and draws data, the module
drill-down opens, a hostile module/function name shows as text and runs
nothing, and traces posted to pss serve appear without a reload.

Usage: board_browser.py BASE_URL SCREENSHOT_DIR|-  (exit 0 when every check holds)
"""

import json
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

BASE, SHOTS = sys.argv[1], sys.argv[2]
HOSTILE = "<img src=x onerror=alert(1)>"
CHARTS = {
    "overview": ["gauge", "trend", "modules"],
    "metrics": ["m-pss", "m-sub", "m-traffic"],
    "diagnostics": ["h-errors", "h-entropy", "patterns"],
    "performance": ["p-latency", "p-wait"],
    "alarms": ["a-chart"],
}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1400", "--disable-dev-shm-usage"]:
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
# Debian's driver, never a download.
driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
driver.set_page_load_timeout(30)


def probe():
    return driver.execute_script("return window.__board || null")


def wait(cond, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    fail(f"timed out waiting for {what}; probe={probe()}")


def severe_logs():
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def no_alert():
    try:
        a = driver.switch_to.alert
        fail(f"a script ran: alert {a.text!r}")
    except NoAlertPresentException:
        pass


def post(service, traces):
    req = urllib.request.Request(
        f"{BASE}/v1/traces?service={service}",
        data=json.dumps(traces).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status in (200, 202), r.status


try:
    for tab, charts in CHARTS.items():
        driver.get(f"{BASE}/?service=checkout&tab={tab}")
        wait(lambda: (probe() or {}).get("ready") and probe().get("tab") == tab, f"tab {tab}")
        p = probe()
        for c in charts:
            if not p["drawn"].get(c):
                fail(f"tab {tab}: chart {c} drew no data ({p['drawn']})")
        if p["errors"]:
            fail(f"tab {tab}: errors shown {p['errors']}")
        logs = severe_logs()
        if logs:
            fail(f"tab {tab}: console errors {logs}")
        if SHOTS != "-":
            driver.save_screenshot(f"{SHOTS}/board-{tab}.png")
        print(f"ok: tab {tab} drew {[p['drawn'][c] for c in charts]}")

    # The deep link keeps the tab; the module drill-down opens.
    driver.get(f"{BASE}/?service=checkout&tab=overview")
    wait(lambda: (probe() or {}).get("ready"), "overview")
    rows = driver.find_elements(By.CSS_SELECTOR, "#modules tbody tr")
    if not rows:
        fail("no module rows")
    rows[0].click()
    wait(lambda: probe()["drawn"].get("moduleDetail"), "the module drill-down")
    if driver.find_element(By.ID, "module-detail").get_attribute("hidden") is not None:
        fail("the drill-down stayed hidden")
    print("ok: drill-down of", rows[0].find_element(By.TAG_NAME, "td").text)

    # Live: traces posted for a new window of checkout appear without a reload.
    meta = json.loads(urllib.request.urlopen(f"{BASE}/api/meta", timeout=10).read())
    info = next(s for s in meta["services"] if s["name"] == "checkout")
    t0 = info["to"] + 30
    loads = probe()["loads"]
    before = probe()["drawn"]["trend"]
    driver.execute_script("window.__board_marker = 1")
    post("checkout", [
        {"name": "pay", "module": "checkout.api", "duration": 0.02 + (i % 5) * 0.001, "wait_time": 0.001,
         "memory": 1000000, "error": False, "timestamp": t0 + i, "branch_tag": "a"}
        for i in range(40)
    ])
    wait(lambda: probe()["loads"] > loads and probe()["drawn"]["trend"] > before, "new windows on screen", timeout=40)
    if driver.execute_script("return window.__board_marker") != 1:
        fail("the page reloaded")
    print(f"ok: live, trend points {before} -> {probe()['drawn']['trend']}")

    # A hostile name is text, and runs nothing.
    post("evil", [
        {"name": HOSTILE, "module": HOSTILE, "duration": 0.01 * (1 + i % 3), "wait_time": 0.0, "memory": 1000,
         "error": i % 4 == 0, "timestamp": t0 + i, "branch_tag": HOSTILE}
        for i in range(30)
    ])
    wait(lambda: any(s["name"] == "evil" for s in json.loads(urllib.request.urlopen(f"{BASE}/api/meta", timeout=10).read())["services"]), "service evil")
    driver.get(f"{BASE}/?service=evil&tab=overview")
    wait(lambda: (probe() or {}).get("ready") and probe()["drawn"].get("modules"), "evil's overview")
    cells = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#modules tbody td")]
    if HOSTILE not in cells:
        fail(f"the hostile module name is not shown as text: {cells}")
    if driver.find_elements(By.CSS_SELECTOR, "main img"):
        fail("an <img> element was injected")
    driver.find_elements(By.CSS_SELECTOR, "#modules tbody tr")[0].click()
    wait(lambda: probe()["drawn"].get("moduleDetail"), "evil's drill-down")
    if HOSTILE not in [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#md-failed tbody td")]:
        fail("the hostile function name is not shown as text in the failed traces")
    for tab in ["diagnostics", "alarms"]:
        driver.find_element(By.CSS_SELECTOR, f'nav button[data-tab="{tab}"]').click()
        wait(lambda: probe()["tab"] == tab, tab)
    no_alert()
    if driver.execute_script("return typeof window.__pwned") != "undefined":
        fail("a script ran")
    logs = severe_logs()
    if logs:
        fail(f"console errors on the hostile service: {logs}")
    print("ok: hostile names are text")
finally:
    driver.quit()
print("all board checks passed")
