#!/usr/bin/env python3
"""An HTTP/1.1 server for common/http_client's tests, on loopback only.

Prints its port on stdout once listening on 127.0.0.1 (port 0 = any), then
serves until SIGTERM. Connections are kept alive unless said otherwise.
Behaviour by path (any method):

  /echo           200, JSON {"method", "path", "headers", "body", "peer_port"}
  /status/<code>  answers <code> with a short JSON body
  /slow/<ms>      waits <ms> milliseconds, then 200
  /big/<n>        200 with a body of <n> bytes
  /drop           200 that looks kept alive, then closes the connection

With `--tls DIR` it generates throwaway certificates in DIR
(tls_test_certs.py) and serves https on four ports instead, printing one JSON
line {"good": port, "wrong_host": port, "expired": port, "mtls": port}:
good and mtls use the certificate for localhost/127.0.0.1, wrong_host one for
another name, expired one that expired in 2020; mtls requires a client
certificate issued by the test CA.
"""

import json
import os
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep the test output quiet
        pass

    def answer(self, code, body, content_type="application/json"):
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Test-Server", "yes")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout and cancel tests)

    def handle_any(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8", "replace")
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[0] == "echo":
            self.answer(200, json.dumps({
                "method": self.command, "path": self.path, "body": body,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "peer_port": self.client_address[1]}).encode())
        elif parts[0] == "status" and len(parts) > 1:
            self.answer(int(parts[1]), b'{"ok":false}')
        elif parts[0] == "slow" and len(parts) > 1:
            time.sleep(int(parts[1]) / 1000.0)
            self.answer(200, b'{"ok":true}')
        elif parts[0] == "big" and len(parts) > 1:
            self.answer(200, b"x" * int(parts[1]), "text/plain")
        elif parts[0] == "drop":
            self.answer(200, b'{"ok":true}')
            self.close_connection = True
        else:
            self.answer(404, b'{"ok":false}')

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


def tls_server(cert, key, client_ca=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda *_: None  # refused handshakes are what the tests expect
    # The handshake runs in the handler's thread (a failed one only ends
    # that connection), not in accept.
    server.socket = context.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    return server


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if len(sys.argv) == 3 and sys.argv[1] == "--tls":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from tls_test_certs import make_certs
        c = make_certs(sys.argv[2])
        servers = {
            "good": tls_server(c["good"], c["good_key"]),
            "wrong_host": tls_server(c["wrong_host"], c["wrong_host_key"]),
            "expired": tls_server(c["expired"], c["expired_key"]),
            "mtls": tls_server(c["good"], c["good_key"], client_ca=c["ca"]),
        }
        for s in servers.values():
            threading.Thread(target=s.serve_forever, daemon=True).start()
        print(json.dumps({k: s.server_address[1] for k, s in servers.items()}), flush=True)
        threading.Event().wait()
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
