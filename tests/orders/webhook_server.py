#!/usr/bin/env python3
"""A provisioning system for the webhook backend's tests, on loopback only.

Usage: webhook_server.py RECORD_FILE
Prints "PORT <n>" on stdout once listening on 127.0.0.1:<n> (port 0 = any),
then serves until SIGTERM. Every POST is appended to RECORD_FILE as one JSON
line {"path", "headers", "body"}. Behaviour by path:

  /ok                  200
  /status/<code>       answers <code>
  /fail-first/<n>/...  503 for the first n requests to this exact path, then 200
  /slow/<ms>           waits <ms> milliseconds, then 200
"""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECORD_LOCK = threading.Lock()
COUNTS = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep the test output quiet
        pass

    def answer(self, code):
        body = b'{"ok":true}' if 200 <= code < 300 else b'{"ok":false}'
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8", "replace")
        with RECORD_LOCK:
            with open(self.server.record_file, "a", encoding="utf-8") as f:
                f.write(json.dumps({"path": self.path,
                                    "headers": {k.lower(): v for k, v in self.headers.items()},
                                    "body": body}) + "\n")
            COUNTS[self.path] = COUNTS.get(self.path, 0) + 1
            seen = COUNTS[self.path]
        parts = self.path.strip("/").split("/")
        if parts[0] == "ok":
            self.answer(200)
        elif parts[0] == "status" and len(parts) > 1:
            self.answer(int(parts[1]))
        elif parts[0] == "fail-first" and len(parts) > 1:
            self.answer(503 if seen <= int(parts[1]) else 200)
        elif parts[0] == "slow" and len(parts) > 1:
            time.sleep(int(parts[1]) / 1000.0)
            self.answer(200)
        else:
            self.answer(404)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.record_file = sys.argv[1]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
