#!/usr/bin/env python3
"""Two people chat on the demo page (GET /) in two headless Chromium sessions (Selenium).

Usage: check-demo-chat.py BASE_URL SCREENSHOT_DIR

alice signs in on a WebSocket, bob with ?transport=longpoll; they chat both ways; bob's typing
and read receipt show on alice's page; bob leaves, alice writes twice, bob comes back and sees
both; an image attachment shows its thumbnail on bob's page (skipped, with the reason, when the
gateway has no POST /v1/media). Prints one JSON object of what each page showed; exits 2 with
the failed step on stderr. Screenshots of both pages go to SCREENSHOT_DIR. Used by the
EndToEndTests' DemoBrowserTests; scripts/setup-browser.sh installs what it needs.
"""
import json
import os
import shutil
import struct
import sys
import tempfile
import urllib.request
import zlib

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 20


def find(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def browser():
    options = Options()
    binary = find("chromium", "chromium-browser", "google-chrome")
    if binary:
        options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1100,800", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    # An explicit driver path keeps Selenium Manager from looking for (downloading) one.
    driver_path = find("chromedriver") or "/usr/bin/chromedriver"
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    return driver


def png(width, height):
    """A small RGB gradient PNG (so the gateway's thumbnailer has a real image to work on)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 128)) for x in range(width))
        for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def post_json(url, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    return json.load(urllib.request.urlopen(request, timeout=10))


class Step(Exception):
    pass


def wait(driver, what, condition, timeout=WAIT):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        raise Step(what) from None


def testid(driver, name):
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def sign_in(driver, url, name):
    driver.get(url)
    wait(driver, f"{name}: the sign-in form", lambda d: d.find_element(By.ID, "signin").is_displayed()
         or d.find_element(By.ID, "app").is_displayed())
    if driver.find_element(By.ID, "signin").is_displayed():
        testid(driver, "signin-name").send_keys(name)
        testid(driver, "signin-submit").click()
    wait(driver, f"{name}: connected", lambda d: testid(d, "transport").get_attribute("data-state") == "open")
    return testid(driver, "transport").text.strip().lower()


def open_conversation(driver, peer):
    field = testid(driver, "peer")
    field.clear()
    field.send_keys(peer)
    testid(driver, "peer-submit").click()
    wait(driver, f"conversation with {peer} open",
         lambda d: testid(d, "title").get_attribute("data-key") == ("user:" + peer))


def send(driver, text):
    testid(driver, "message-input").send_keys(text)
    testid(driver, "send").click()


def lines(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('[data-testid=message]')).map(l => ({"
        " id: l.dataset.id, from: l.dataset.from,"
        " text: l.querySelector('[data-testid=message-text]').textContent,"
        " receipt: (l.querySelector('[data-testid=receipt]') || {dataset: {}}).dataset.state || null}))")


def line_with(driver, text):
    return next((line for line in lines(driver) if line["text"] == text), None)


def main():
    base, shots = sys.argv[1].rstrip("/"), sys.argv[2]
    os.makedirs(shots, exist_ok=True)
    result = {"steps": []}
    alice = browser()
    bob = None
    try:
        bob = browser()
        result["alice_transport"] = sign_in(alice, base + "/", "alice")
        result["bob_transport"] = sign_in(bob, base + "/?transport=longpoll", "bob")
        result["steps"].append("signed in")

        # alice → bob, on two transports.
        open_conversation(alice, "bob")
        send(alice, "hello bob")
        wait(alice, "alice's message acked", lambda d: (line_with(d, "hello bob") or {}).get("receipt") in ("sent", "read"))
        wait(bob, "bob's page lists alice's conversation",
             lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid=conversation][data-key="user:alice"]'))
        bob.find_element(By.CSS_SELECTOR, '[data-testid=conversation][data-key="user:alice"]').click()
        wait(bob, "bob sees 'hello bob'", lambda d: line_with(d, "hello bob"))
        result["bob_saw"] = [line["text"] for line in lines(bob)]
        result["steps"].append("alice to bob")

        # bob has the conversation open: alice's message shows read.
        wait(alice, "alice sees the read receipt", lambda d: (line_with(d, "hello bob") or {}).get("receipt") == "read")
        result["read_receipt"] = line_with(alice, "hello bob")["receipt"]
        result["steps"].append("read receipt")

        # bob types: alice sees it; then bob → alice.
        testid(bob, "message-input").send_keys("hi al")
        wait(alice, "alice sees bob typing", lambda d: "bob is typing" in testid(d, "typing").text)
        result["typing"] = testid(alice, "typing").text
        alice.save_screenshot(os.path.join(shots, "alice-typing.png"))
        testid(bob, "message-input").send_keys("ice")
        testid(bob, "send").click()
        wait(alice, "alice sees 'hi alice'", lambda d: line_with(d, "hi alice"))
        result["alice_order"] = [line["text"] for line in lines(alice)]
        result["presence"] = alice.find_element(
            By.CSS_SELECTOR, '[data-testid=conversation][data-key="user:bob"] [data-testid=presence]').get_attribute("data-status")
        result["steps"].append("bob to alice")

        # A group: alice creates it with bob and writes; bob's page lists it under its name.
        alice.find_element(By.CSS_SELECTOR, ".new-group summary").click()
        testid(alice, "group-name").send_keys("team")
        testid(alice, "group-members").send_keys("bob")
        testid(alice, "group-submit").click()
        wait(alice, "the group conversation opens", lambda d: (testid(d, "title").get_attribute("data-key") or "").startswith("group:"))
        send(alice, "group hello")
        wait(alice, "the group message acked", lambda d: (line_with(d, "group hello") or {}).get("receipt") in ("sent", "read"))
        group_item = '[data-testid=conversation][data-key^="group:"]'
        wait(bob, "bob's page lists the group", lambda d: d.find_elements(By.CSS_SELECTOR, group_item))
        wait(bob, "the group's name shows", lambda d: "team" in d.find_element(By.CSS_SELECTOR, group_item).text)
        bob.find_element(By.CSS_SELECTOR, group_item).click()
        wait(bob, "bob sees 'group hello'", lambda d: line_with(d, "group hello"))
        result["group"] = {"name": bob.find_element(By.CSS_SELECTOR, group_item).text.strip(),
                           "bob_saw": [line["text"] for line in lines(bob)]}
        open_conversation(alice, "bob")
        result["steps"].append("group")

        # bob leaves; alice writes twice; bob comes back and catches up (sync from cur_max_seq).
        bob.get("about:blank")
        for text in ("while you were away 1", "while you were away 2"):
            send(alice, text)
            wait(alice, f"'{text}' acked", lambda d, t=text: (line_with(d, t) or {}).get("receipt") in ("sent", "read"))
        transport = sign_in(bob, base + "/?transport=longpoll", "bob")
        result["bob_transport_after_return"] = transport
        wait(bob, "bob's page lists alice's conversation after coming back",
             lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid=conversation][data-key="user:alice"]'))
        result["bob_unread_after_return"] = bob.execute_script(
            "const b = document.querySelector('[data-testid=conversation][data-key=\"user:alice\"] .unread');"
            " return b ? Number(b.textContent) : 0")
        result["bob_synced_seq"] = bob.execute_script("return Number(document.body.dataset.synced || 0)")
        bob.find_element(By.CSS_SELECTOR, '[data-testid=conversation][data-key="user:alice"]').click()
        # The two he missed come with the catch-up sync, the earlier two with the conversation's
        # history, loaded on the click: wait for all four before reading the lines (reading
        # once the new two showed could be before the history arrived).
        wait(bob, "bob sees what he missed and the conversation before it",
             lambda d: all(line_with(d, t) for t in ("hello bob", "hi alice", "while you were away 1", "while you were away 2")))
        result["bob_after_return"] = [line["text"] for line in lines(bob)]
        result["steps"].append("offline catch-up")

        # An image attachment, when the gateway has media.
        status = alice.execute_async_script(
            "const done = arguments[0]; fetch('/v1/media', {method: 'POST'}).then(r => done(r.status), e => done(-1));")
        directory = tempfile.mkdtemp()
        path = os.path.join(directory, "gradient.png")
        with open(path, "wb") as file:
            file.write(png(320, 200))
        testid(alice, "attach").send_keys(path)
        send(alice, "a picture")
        if status in (404, 405):
            # The page says why the picture was not sent.
            wait(alice, "the page refuses the picture", lambda d: (line_with(d, "a picture") or {}).get("receipt") == "failed")
            reason = alice.execute_script(
                "return Array.from(document.querySelectorAll('[data-testid=message]')).find("
                "l => l.querySelector('[data-testid=message-text]').textContent === 'a picture')"
                ".querySelector('[data-testid=receipt]').textContent")
            result["image"] = {"skipped": f"the gateway has no POST /v1/media (status {status}); the media stage is not built in",
                               "page_says": reason}
            shutil.rmtree(directory, ignore_errors=True)
        else:
            wait(bob, "bob sees the thumbnail", lambda d: d.execute_script(
                "return Array.from(document.querySelectorAll('[data-testid=thumbnail]')).some(i => i.complete && i.naturalWidth > 0)"), 30)
            result["image"] = {"thumbnail_width": bob.execute_script(
                "return Math.max(...Array.from(document.querySelectorAll('[data-testid=thumbnail]')).map(i => i.naturalWidth))")}
            shutil.rmtree(directory, ignore_errors=True)
        result["steps"].append("image")

        # History scroll-back: 35 earlier messages to carol (sent over the HTTP API); after a
        # reload alice's page shows the newest 30, and "older" brings the rest.
        token = post_json(base + "/demo/token", {"user": "alice"})["token"]
        for n in range(35):
            post_json(base + "/v1/messages", {"type": "send", "to": {"user": "carol"}, "body": {"text": f"c{n}"},
                                              "client_msg_id": f"history-{n}"}, token)
        alice.get(base + "/")
        wait(alice, "alice signed in again", lambda d: testid(d, "transport").get_attribute("data-state") == "open")
        open_conversation(alice, "carol")
        wait(alice, "the newest page of carol's conversation", lambda d: len(lines(d)) == 30)
        first_page = [line["text"] for line in lines(alice)]
        wait(alice, "the older button", lambda d: testid(d, "older").is_displayed())
        testid(alice, "older").click()
        wait(alice, "the older messages", lambda d: len(lines(d)) == 35)
        result["history"] = {"first_page": first_page, "after_older": [line["text"] for line in lines(alice)],
                             "older_button_after": testid(alice, "older").is_displayed()}
        result["steps"].append("history")
        alice.save_screenshot(os.path.join(shots, "alice.png"))
        bob.save_screenshot(os.path.join(shots, "bob.png"))
        print(json.dumps(result))
        return 0
    except Step as step:
        for name, driver in (("alice", alice), ("bob", bob)):
            if driver:
                driver.save_screenshot(os.path.join(shots, f"{name}-failed.png"))
        print(f"step failed: {step} (done: {result['steps']}); alice: {lines(alice)!r}", file=sys.stderr)
        return 2
    finally:
        alice.quit()
        if bob:
            bob.quit()


if __name__ == "__main__":
    sys.exit(main())
