#!/usr/bin/env python3
"""The browser client's `discover` option, in headless Chromium on a real cluster.

Usage: check-client-discover.py ENTRY_URL TOKEN ADMIN_URLS_JSON ADMIN_TOKEN

ENTRY_URL is a drained node (so `/v1/discover` there names another one); ADMIN_URLS_JSON maps
each node id to its admin base URL. In a page of the entry's origin, /client.js with
`discover: true`:
1. over WebSocket, connects to the node discover names, not the entry;
2. when that node is drained (the script calls its /admin/drain), the 1001 makes the client
   reconnect, through discover again, to the node left;
3. over long-poll, connects to the discovered node too;
4. when `/v1/discover` cannot be reached, falls back to the entry itself.
Prints {"first", "after_drain", "longpoll", "fallback", "entry"} (node ids and base URLs); exits 2
with the failed step. Used by the EndToEndTests' ClientDiscoverBrowserTests.
"""
import json
import os
import sys
import urllib.request

from selenium.common.exceptions import TimeoutException

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
chat = __import__("check-demo-chat")

CONNECT = """
const [token, transport, failDiscover, done] = arguments;
if (failDiscover && !window.__realFetch) {
  window.__realFetch = window.fetch;
  window.fetch = (url, init) => String(url).endsWith("/v1/discover")
    ? Promise.reject(new TypeError("discover unreachable")) : window.__realFetch(url, init);
}
const memory = new Map();
const storage = { get: (k) => memory.get(k) ?? null, set: (k, v) => memory.set(k, v) };
import("/client.js").then(async ({ ChatClient }) => {
  const chat = new ChatClient({ token, transport, discover: true, storage, backoffBaseMs: 100, backoffMaxMs: 1000 });
  const hellos = [];
  chat.on("hello", (hello) => hellos.push({ node: hello.node, base: chat.baseURL }));
  window.__clients = window.__clients || [];
  window.__clients.push({ chat, hellos });
  await chat.connect();
  done({ index: window.__clients.length - 1, node: chat.hello.node, base: chat.baseURL, transport: chat.transport });
}).catch((error) => done({ error: String(error) }));
"""


def connect(driver, token, transport, fail_discover=False):
    try:
        result = driver.execute_async_script(CONNECT, token, transport, fail_discover)
    except TimeoutException:
        raise chat.Step(f"connect over {transport} (fail_discover={fail_discover}): no hello in 30 s") from None
    if "error" in result:
        raise chat.Step(f"connect over {transport}: {result['error']}")
    return result


def hellos(driver, index):
    return driver.execute_script("return window.__clients[arguments[0]].hellos", index)


def drain(admin_url, admin_token):
    request = urllib.request.Request(admin_url + "/admin/drain", method="POST", data=b"",
                                     headers={"Authorization": "Bearer " + admin_token})
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.status


def main():
    entry, token, admins, admin_token = sys.argv[1].rstrip("/"), sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    driver = chat.browser()
    driver.set_script_timeout(30)
    try:
        driver.get(entry + "/v1/discover")  # any page of the entry's origin
        first = connect(driver, token, "websocket")
        if drain(admins[first["node"]], admin_token) != 200:
            raise chat.Step("drain " + first["node"])
        chat.wait(driver, "reconnected after the drain", lambda d: len(hellos(d, first["index"])) >= 2, timeout=30)
        after = hellos(driver, first["index"])[1]
        longpoll = connect(driver, token, "longpoll")
        fallback = connect(driver, token, "websocket", fail_discover=True)
        driver.execute_script("window.__clients.forEach(c => c.chat.close())")
        print(json.dumps({"first": first, "after_drain": after, "longpoll": longpoll, "fallback": fallback, "entry": entry}))
        return 0
    except chat.Step as step:
        print(f"step failed: {step}", file=sys.stderr)
        return 2
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
