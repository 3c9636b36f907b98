"""The "help near me" page in Debian's Chromium, driven through ChromeDriver (selenium):

- under a slow link (CDP: 250 kbit/s each way, 300 ms latency), "Use my location" (the
  browser's geolocation, set by CDP) shows the first results within 5 s of starting to load;
  the first view is under 50 KB transferred, every request goes to the node itself, the
  position sent is rounded to 3 decimals, and nothing is left in storage or cookies;
- axe-core reports no WCAG 2.1 A/AA violation, before and after results;
- the keyboard alone reaches every control (and opens the coordinates);
- with JavaScript disabled, the form finds help by a typed place;
- French is served to a French browser.

Usage: page_browser.py ADDRESS PROTO_ROOT SCREENSHOT
Environment: HUBDIR_AXE_JS, the path of axe.min.js.
"""

import json
import os
import re
import sys
import time
from urllib.parse import parse_qs, urlparse

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from hubdir_client import fail

POSITION = (-17.82919876, 31.05214567)
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def browser(javascript=True, language="en-US"):
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=412,1000",
                f"--lang={language}"):
        options.add_argument(arg)
    prefs = {"intl.accept_languages": language}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def axe(driver, axe_source, when):
    driver.execute_script(axe_source)
    violations = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"axe.run(document, {{runOnly: {{type: 'tag', values: {json.dumps(AXE_TAGS)}}}}})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.html).slice(0, 3)}))))"
        ".catch(e => done([{id: 'axe failed', help: String(e)}]));")
    if violations:
        fail(f"axe-core, {when}: {json.dumps(violations, indent=1)}")
    return len(violations)


def results_shown(driver, timeout):
    WebDriverWait(driver, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results li.site"))
    return driver.find_elements(By.CSS_SELECTOR, "#results li.site")


def slow_link_and_geolocation(base, axe_source, screenshot):
    driver = browser()
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 300, "downloadThroughput": 250_000 / 8, "uploadThroughput": 250_000 / 8})
        driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": base, "permissions": ["geolocation"]})
        driver.execute_cdp_cmd("Emulation.setGeolocationOverride",
                               {"latitude": POSITION[0], "longitude": POSITION[1], "accuracy": 20})
        started = time.monotonic()
        driver.get(base + "/")
        locate = WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "locate"))
        WebDriverWait(driver, 10).until(lambda d: locate.is_displayed())
        first_view = driver.execute_script(
            "return performance.getEntries().filter(e => 'transferSize' in e)"
            ".map(e => ({name: e.name, bytes: e.transferSize}));")
        locate.click()
        sites = results_shown(driver, 10)
        elapsed = time.monotonic() - started
        if elapsed > 5:
            fail(f"the first results took {elapsed:.1f} s on the slow link")
        weight = sum(e["bytes"] for e in first_view)
        if weight >= 50_000 or weight == 0:
            fail(f"the first view transferred {weight} bytes: {first_view}")
        entries = driver.execute_script("return performance.getEntries().map(e => e.name);")
        foreign = [e for e in entries if e.startswith("http") and not e.startswith(base)]
        if foreign:
            fail(f"the page fetched from elsewhere: {foreign}")
        sent = [parse_qs(urlparse(e).query) for e in entries if urlparse(e).path == "/near"]
        if not sent or any(len(q[k][0].split(".")[1]) > 3 for q in sent for k in ("lat", "lng")):
            fail(f"the position sent was not rounded to 3 decimals: {sent}")
        kept = driver.execute_script(
            "return [localStorage.length, sessionStorage.length, document.cookie, location.search];")
        if kept != [0, 0, "", ""]:
            fail(f"the page kept something: {kept}")
        text = sites[0].text
        if not re.search(r"\b\d+(\.\d)? k?m\b", text):
            fail(f"a result without its distance: {text}")
        print(f"slow link: first results in {elapsed:.1f} s (250 kbit/s, 300 ms), first view {weight} bytes, "
              f"{len(sites)} sites, position sent as {sent[0]['lat'][0]},{sent[0]['lng'][0]}, nothing stored")
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        axe(driver, axe_source, "with results")
        driver.save_screenshot(screenshot)
        print(f"screenshot: {screenshot} ({os.path.getsize(screenshot)} bytes)")
        driver.get(base + "/")
        axe(driver, axe_source, "the first view")
        print(f"axe-core: no violation of {', '.join(AXE_TAGS)}, before and after results")
    finally:
        driver.quit()


def keyboard(base):
    driver = browser()
    try:
        driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": base, "permissions": ["geolocation"]})
        driver.execute_cdp_cmd("Emulation.setGeolocationOverride",
                               {"latitude": POSITION[0], "longitude": POSITION[1], "accuracy": 20})
        driver.get(base + "/")
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "locate").is_displayed())
        reached, body = [], driver.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        for _ in range(40):
            active = driver.switch_to.active_element
            label = active.get_attribute("id") or active.tag_name
            if label in reached:
                break
            reached.append(label)
            if active.tag_name == "summary":
                active.send_keys(Keys.ENTER)  # opens the coordinates
            active.send_keys(Keys.TAB)
        controls = driver.execute_script(
            "return [...document.querySelectorAll('a[href], button, input, select, summary')]"
            ".filter(e => e.offsetParent !== null).map(e => e.id || e.tagName.toLowerCase());")
        missed = [c for c in controls if c not in reached]
        if missed:
            fail(f"the keyboard did not reach {missed}; it went {reached}")
        driver.find_element(By.ID, "locate").send_keys(Keys.ENTER)
        sites = results_shown(driver, 10)
        links = sites[0].find_elements(By.TAG_NAME, "a")
        if not links[0].get_attribute("href").startswith("geo:") or "openstreetmap.org" not in links[1].get_attribute(
                "href"):
            fail(f"directions links: {[a.get_attribute('href') for a in links]}")
        print(f"keyboard: {len(reached)} stops reach every control ({', '.join(reached)}); Enter finds help")
    finally:
        driver.quit()


def without_javascript(base):
    driver = browser(javascript=False)
    try:
        driver.get(base + "/")
        if driver.find_element(By.ID, "locate").is_displayed():
            fail("'Use my location' shows without JavaScript")
        driver.find_element(By.ID, "q").send_keys("Harare")
        driver.find_element(By.ID, "country").send_keys("zw")
        driver.find_element(By.CSS_SELECTOR, "#service option[value=free_wifi]").click()
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        sites = results_shown(driver, 10)
        if urlparse(driver.current_url).path != "/near" or "Free wifi" not in sites[0].text:
            fail(f"the no-JS search: {driver.current_url} {sites[0].text}")
        print(f"no JavaScript: the form found {len(sites)} sites with free wifi near Harare")
    finally:
        driver.quit()


def french(base):
    driver = browser(language="fr-FR")
    try:
        driver.get(base + "/")
        lang, title = driver.find_element(By.TAG_NAME, "html").get_attribute("lang"), driver.title
        if lang != "fr" or "aide" not in title:
            fail(f"a French browser got lang={lang} title={title}")
        print(f"french: {title}")
    finally:
        driver.quit()


def main():
    address, _proto_root, screenshot = sys.argv[1:4]
    base = f"http://{address}"
    with open(os.environ["HUBDIR_AXE_JS"], encoding="utf-8") as f:
        axe_source = f.read()
    slow_link_and_geolocation(base, axe_source, screenshot)
    keyboard(base)
    without_javascript(base)
    french(base)


if __name__ == "__main__":
    main()
