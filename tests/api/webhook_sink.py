#!/usr/bin/env python3
"""A webhook receiver for the tests: answers 500 to the first --fail requests,
then 200, and writes one JSON line per request (status sent, headers, body)
to --out. Prints its port on stdout once listening. Loopback only."""
import argparse
import http.server
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fail", type=int, default=0, help="answer 500 to this many requests first")
    ap.add_argument("--out", required=True, help="JSON lines file, one per request")
    args = ap.parse_args()
    state = {"seen": 0}

    class handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("utf-8")
            state["seen"] += 1
            status = 500 if state["seen"] <= args.fail else 200
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps({"status": status, "path": self.path,
                                    "headers": {k.lower(): v for k, v in self.headers.items()},
                                    "body": body}) + "\n")
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
