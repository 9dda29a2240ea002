#!/usr/bin/env python3
"""The dashboard end to end in headless Chromium, driven over the DevTools
protocol (a small stdlib WebSocket client: no packages beyond chromium).

A SIM locked to device A has been seen in device B and is barred. The
operator opens the page, enters the token, finds the SIM, sees the bar with
its trigger IMEI, clicks "Unbar and update to last seen IMEI", and the page
(polling, no reload) shows the SIM locked to B.

usage: ui_test.py FAKE_DAEMON SCREENSHOT.png [CHROMIUM]
"""
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

IMEI_A = "353490012345670"
IMEI_B = "352099001761481"


class websocket:
    """RFC 6455 client, text frames only: enough for the DevTools protocol."""

    def __init__(self, url):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.sock = socket.create_connection((host, port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("DevTools closed the WebSocket handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("WebSocket handshake refused: " + head.decode(errors="replace"))

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise RuntimeError("DevTools closed the connection")
            buf += chunk
        return buf

    def send(self, text):
        data = text.encode()
        header = bytearray([0x81])
        if len(data) < 126:
            header.append(0x80 | len(data))
        elif len(data) < 65536:
            header.append(0x80 | 126)
            header += len(data).to_bytes(2, "big")
        else:
            header.append(0x80 | 127)
            header += len(data).to_bytes(8, "big")
        mask = os.urandom(4)
        header += mask
        self.sock.sendall(bytes(header) + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._exact(2)
            opcode, length = b0 & 0x0F, b1 & 0x7F
            if length == 126:
                length = int.from_bytes(self._exact(2), "big")
            elif length == 127:
                length = int.from_bytes(self._exact(8), "big")
            payload = self._exact(length)
            if opcode == 0x8:
                raise RuntimeError("DevTools closed the WebSocket")
            if opcode == 0x9:  # ping -> pong
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()


class devtools:
    def __init__(self, ws_url):
        self.ws = websocket(ws_url)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expression, what, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.js(expression):
                return
            time.sleep(0.1)
        raise AssertionError("timed out waiting for " + what + "; page shows: " +
                             str(self.js("document.getElementById('sim-view').innerText")))


def text(dt, element_id):
    return dt.js(f"document.getElementById('{element_id}').textContent")


def start_chromium(chromium, profile):
    """Headless Chromium with its DevTools on a free loopback port and
    `profile` as its user data: (the process, a devtools session on its page
    with Page events enabled). The process is stopped again if that fails."""
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-dev-shm-usage", "--remote-debugging-port=0",
         "--remote-debugging-address=127.0.0.1", "--window-size=1200,1100",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ws_browser = None
        deadline = time.time() + 60
        while time.time() < deadline and ws_browser is None:
            line = browser.stderr.readline()
            if not line:
                raise RuntimeError("chromium exited before DevTools was ready")
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                ws_browser = m.group(1)
        port = re.match(r"ws://[^:]+:(\d+)/", ws_browser).group(1)
        pages = []
        while not pages and time.time() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
                pages = [t for t in json.load(r) if t["type"] == "page"]
            time.sleep(0.1)
        dt = devtools(pages[0]["webSocketDebuggerUrl"])
        dt.call("Page.enable")
        return browser, dt
    except BaseException:
        stop_chromium(browser)
        raise


def open_sim(dt, url, token, iccid):
    """The operator's first steps: open the dashboard at `url`, log in with
    `token`, search the SIM `iccid`."""
    dt.call("Page.navigate", url=url + "/ui")
    dt.wait("document.readyState === 'complete' && !!document.getElementById('token')",
            "the page to load")
    dt.js(f"document.getElementById('token').value = '{token}';"
          "document.getElementById('login').click(); true")
    dt.js(f"document.getElementById('search-iccid').value = '{iccid}';"
          "document.getElementById('search-btn').click(); true")


def stop_chromium(browser):
    browser.terminate()
    try:
        browser.wait(10)
    except subprocess.TimeoutExpired:
        browser.kill()


def main():
    daemon_bin, screenshot = sys.argv[1], sys.argv[2]
    chromium = sys.argv[3] if len(sys.argv) > 3 else (shutil.which("chromium") or "/usr/bin/chromium")
    daemon = subprocess.Popen([daemon_bin], stdout=subprocess.PIPE, text=True)
    profile = tempfile.mkdtemp(prefix="imeilock-ui-")
    browser = None
    try:
        url, token, iccid = daemon.stdout.readline().split()
        browser, dt = start_chromium(chromium, profile)
        dt.call("Emulation.setDeviceMetricsOverride", width=1200, height=1100,
                deviceScaleFactor=1, mobile=False)

        # The operator opens the dashboard, enters the token, searches the SIM ...
        open_sim(dt, url, token, iccid)
        # ... and sees the bar raised by the IMEI lock, with the device that triggered it.
        dt.wait("document.getElementById('bar-state').dataset.state === 'barred'", "the bar")
        assert text(dt, "lock-imei") == IMEI_A, text(dt, "lock-imei")
        assert text(dt, "trigger-imei") == IMEI_B, text(dt, "trigger-imei")
        assert text(dt, "last-seen-imei") == IMEI_B
        assert text(dt, "bar-reason") == "IMEI lock"
        assert dt.js("document.getElementById('lock-state').dataset.state") == "locked"
        # The two unbar options carry the product text's caveats as tooltips.
        keep_tip = dt.js("document.getElementById('tip-keep').dataset.tip")
        update_tip = dt.js("document.getElementById('tip-update').dataset.tip")
        assert "3rd" in keep_tip and "original device" in keep_tip, keep_tip
        assert "first" in update_tip, update_tip
        assert not dt.js("document.getElementById('unbar-update').disabled")
        dt.wait("document.querySelectorAll('#events-table tbody tr').length > 0", "the history")
        # Show the R10 caveat's tooltip in the screenshot.
        dt.js("document.getElementById('tip-keep').classList.add('show'); true")
        time.sleep(0.2)
        shot = dt.call("Page.captureScreenshot", format="png")
        dt.js("document.getElementById('tip-keep').classList.remove('show'); true")
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))

        # The operator picks "Unbar and update to last seen IMEI".
        label = dt.js("document.getElementById('unbar-update').textContent")
        assert label == "Unbar and update to last seen IMEI", label
        dt.js("document.getElementById('unbar-update').click(); true")
        dt.wait(f"document.getElementById('lock-imei').textContent === '{IMEI_B}' && "
                "document.getElementById('bar-state').dataset.state === 'none'",
                "the SIM locked to B")
        assert "update_to_last_seen" in dt.js("document.getElementById('orders-table').innerText")
        # The SIM layer behind the API agrees.
        req = urllib.request.Request(f"{url}/v1/sims/{iccid}",
                                     headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req) as r:
            sim = json.load(r)
        assert sim["lock"]["imei"] == IMEI_B and sim["bar"]["state"] == "none", sim
        shot = dt.call("Page.captureScreenshot", format="png")
        with open(re.sub(r"\.png$", "-unbarred.png", screenshot), "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print("ui: bar shown, unbar and update to last seen IMEI applied, lock shown as", IMEI_B)
        print("1 passed, 0 failed")
        return 0
    finally:
        if browser:
            stop_chromium(browser)
        daemon.terminate()
        daemon.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
