#!/usr/bin/env python3
"""The browser client notices a seq gap and syncs over it.

Usage: check-demo-gap.py DIRECT_URL PROXY_URL SCREENSHOT
       check-demo-gap.py --fallback PROXY_URL SCREENSHOT

bob's page goes through PROXY_URL, a test proxy that drops the WebSocket frame of the message
"two"; alice's page talks to the gateway directly. alice sends "one", "two", "three" while bob
has the conversation open: bob sees seq 3 after 1, syncs, and shows all three, in order.
Prints {"bob_lines": [...], "alice_lines": [...]}; exits 2 with the failed step.
With --fallback, PROXY_URL is a proxy that cannot carry WebSockets: bob signs in with the
default transport ("auto") and the page must fall back to long-poll; prints {"transport": t,
"sent": state}.
Used by the EndToEndTests' DemoBrowserTests.
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
chat = __import__("check-demo-chat")


def fallback(proxied, screenshot):
    bob = chat.browser()
    try:
        transport = chat.sign_in(bob, proxied + "/", "bob")
        chat.open_conversation(bob, "alice")
        chat.send(bob, "through the fallback")
        chat.wait(bob, "acked over long-poll", lambda d: (chat.line_with(d, "through the fallback") or {}).get("receipt") == "sent")
        bob.save_screenshot(screenshot)
        print(json.dumps({"transport": transport, "sent": chat.line_with(bob, "through the fallback")["receipt"]}))
        return 0
    except chat.Step as step:
        bob.save_screenshot(screenshot)
        print(f"step failed: {step}", file=sys.stderr)
        return 2
    finally:
        bob.quit()


def main():
    if sys.argv[1] == "--fallback":
        return fallback(sys.argv[2].rstrip("/"), sys.argv[3])
    direct, proxied, screenshot = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/"), sys.argv[3]
    alice = chat.browser()
    bob = None
    try:
        bob = chat.browser()
        chat.sign_in(alice, direct + "/?transport=websocket", "alice")
        chat.sign_in(bob, proxied + "/?transport=websocket", "bob")
        # bob's conversation is open (its history loaded, empty) before anything is sent, so
        # what he sees comes live or through the sync a gap starts, never from history.
        chat.open_conversation(bob, "alice")
        chat.open_conversation(alice, "bob")
        for text in ("one", "two", "three"):
            chat.send(alice, text)
            chat.wait(alice, f"'{text}' acked", lambda d, t=text: (chat.line_with(d, t) or {}).get("receipt") in ("sent", "read"))
        chat.wait(bob, "bob sees all three", lambda d: len(chat.lines(d)) >= 3)
        bob.save_screenshot(screenshot)
        print(json.dumps({"bob_lines": [line["text"] for line in chat.lines(bob)],
                          "alice_lines": [line["text"] for line in chat.lines(alice)]}))
        return 0
    except chat.Step as step:
        (bob or alice).save_screenshot(screenshot)
        print(f"step failed: {step}; bob: {chat.lines(bob) if bob else None!r}", file=sys.stderr)
        return 2
    finally:
        alice.quit()
        if bob:
            bob.quit()


if __name__ == "__main__":
    sys.exit(main())
