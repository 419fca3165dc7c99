#!/usr/bin/env python3
"""The browser client survives a gateway killed with SIGKILL: nothing sent is lost or doubled.

Usage: check-demo-restart.py CHATGATE CONFIG PORT TRANSPORT SCREENSHOT

Starts `CHATGATE serve --config CONFIG` (demo mode, listening on PORT), signs alice in on the
demo page with ?transport=TRANSPORT in headless Chromium, sends five messages to bob, kills the
gateway (SIGKILL), sends five more while it is down (they wait, unacked), restarts it and waits
until every line is acked. Then reads bob's inbox over HTTP. Prints {"texts": [...], "states":
[...], "pending_while_down": n, "reconnected_transport": t}; exits 2 with the failed step.
Used by the EndToEndTests' DemoBrowserTests.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
chat = __import__("check-demo-chat")


def start(binary, config, port):
    process = subprocess.Popen([binary, "serve", "--config", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise chat.Step("the gateway did not start listening")


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=10))


def main():
    binary, config, port, transport, screenshot = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    base = f"http://127.0.0.1:{port}"
    gateway = start(binary, config, port)
    driver = chat.browser()
    result = {}
    try:
        chat.sign_in(driver, f"{base}/?transport={transport}", "alice")
        chat.open_conversation(driver, "bob")
        acked = lambda d, t: (chat.line_with(d, t) or {}).get("receipt") in ("sent", "read")
        for n in range(5):
            chat.send(driver, f"m{n}")
            chat.wait(driver, f"m{n} acked", lambda d, t=f"m{n}": acked(d, t))
        gateway.send_signal(signal.SIGKILL)
        gateway.wait()
        chat.wait(driver, "the page noticed", lambda d: chat.testid(d, "transport").get_attribute("data-state") != "open")
        for n in range(5, 10):
            chat.send(driver, f"m{n}")
        result["pending_while_down"] = sum(1 for line in chat.lines(driver) if line["receipt"] == "pending")
        gateway = start(binary, config, port)
        chat.wait(driver, "every line acked after the restart",
                  lambda d: all(acked(d, f"m{n}") for n in range(10)), 40)
        result["reconnected_transport"] = chat.testid(driver, "transport").text.strip().lower()
        result["states"] = [line["receipt"] for line in chat.lines(driver)]
        token = post(f"{base}/demo/token", {"user": "bob"})["token"]
        request = urllib.request.Request(f"{base}/v1/sync?since=0&limit=1000", headers={"Authorization": f"Bearer {token}"})
        inbox = json.load(urllib.request.urlopen(request, timeout=10))
        result["texts"] = [m["body"]["text"] for m in inbox["messages"]]
        driver.save_screenshot(screenshot)
        print(json.dumps(result))
        return 0
    except chat.Step as step:
        driver.save_screenshot(screenshot)
        print(f"step failed: {step}; lines: {chat.lines(driver)!r}", file=sys.stderr)
        return 2
    finally:
        driver.quit()
        gateway.kill()
        gateway.wait()


if __name__ == "__main__":
    sys.exit(main())
