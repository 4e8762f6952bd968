"""A tiny app for a workspace (standard library only, as a workspace has): HTTP that says
what it was asked, and a WebSocket echo on any path with `Upgrade: websocket`. For
previews in a browser: /page/ (HTML whose script, a relative asset, tries what a hostile
preview would: the API with the browser's cookies, document.cookie, and a WebSocket),
/set-cookies (cookies a hostile app would set on the dashboard) and /cookies.

    python3 workspace_app.py PORT [HOST]    (writes its pid to app.pid in its directory)
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import socketserver
import struct
import sys

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-app", "workspace")
        self.end_headers()
        self.wfile.write(body)

    def _page(self, kind: str, body: bytes, extra: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.headers.get("upgrade", "").lower() == "websocket":
            self._websocket()
            return
        if self.path == "/page/":
            self._page("text/html", PAGE.encode())
            return
        if self.path == "/page/app.js":
            self._page("text/javascript", SCRIPT.encode())
            return
        if self.path == "/set-cookies":
            cookies = (
                ("set-cookie", "dockyard_session=planted; Path=/"),
                ("set-cookie", "__Host-x=1; Path=/; Secure"),
                ("set-cookie", "mine=1; Path=/; Domain=127.0.0.1; HttpOnly"),
            )
            self._page("text/plain", b"cookies set", cookies)
            return
        if self.path == "/cookies":
            self._page("text/plain", f"cookie={self.headers.get('cookie')}".encode())
            return
        auth = self.headers.get("authorization") or "none"
        self._answer(f"hello from the workspace: {self.path} auth={auth}".encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self._answer(b"posted: " + body)

    def _read(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) < n:
            raise EOFError
        return data

    def _send(self, opcode: int, data: bytes) -> None:
        n = len(data)
        if n < 126:
            head = struct.pack(">BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack(">BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
        self.wfile.write(head + data)
        self.wfile.flush()

    def _websocket(self) -> None:
        key = self.headers["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        try:
            while True:
                b1, b2 = self._read(2)
                opcode, n = b1 & 0x0F, b2 & 0x7F
                if n == 126:
                    (n,) = struct.unpack(">H", self._read(2))
                elif n == 127:
                    (n,) = struct.unpack(">Q", self._read(8))
                mask = self._read(4) if b2 & 0x80 else b"\0\0\0\0"
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(self._read(n)))
                if opcode == 8:
                    self._send(8, data[:2])
                    return
                if opcode == 9:
                    self._send(10, data)
                elif opcode in (1, 2):
                    self._send(opcode, b"echo: " + data)
        except (EOFError, OSError):
            return
        finally:
            self.close_connection = True


PAGE = """<!doctype html>
<html><head><title>preview</title><script src="app.js"></script></head>
<body><p id="page">the preview page</p></body></html>
"""
# what a hostile preview tries; the results land in window.results for the test
SCRIPT = """
window.results = {asset: "loaded"};
try { window.results.cookie = "read: " + document.cookie; }
catch (e) { window.results.cookie = "denied"; }
fetch("/api/dockyard/v1/tasks", {credentials: "include"}).then(
  (r) => r.text().then((t) => { window.results.api = "read " + r.status + ": " + t.slice(0, 60); }),
  () => { window.results.api = "blocked"; });
const ws = new WebSocket(location.href.replace(/^http/, "ws").replace(/page\\/$/, "") + "echo");
ws.onopen = () => ws.send("from the page");
ws.onmessage = (m) => { window.results.ws = m.data; };
ws.onerror = () => { window.results.ws = "error"; };
"""


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "0.0.0.0"
    server = Server((host, port), Handler)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.pid"), "w") as f:
        f.write(str(os.getpid()))
    server.serve_forever()


if __name__ == "__main__":
    main()
