# A job's server for the interactive-session tests and bench: plain HTTP, a streamed response
# that waits for the client, big downloads, a WebSocket echo (RFC 6455, stdlib only) and a
# report of what the container's network reaches. Listens on 127.0.0.1 inside a container
# that has no network, so only the tunnel reaches it.
import base64
import hashlib
import http.server
import os
import socket
import struct
import sys
import threading

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
released = threading.Event()
CHUNK = bytes(range(256)) * 4096  # 1 MiB


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/ws":
            return self.websocket()
        if path == "/hello":
            seen = f"path={self.path} auth={self.headers.get('authorization', 'none')} cookie={self.headers.get('cookie', 'none')}"
            return self.reply(200, f"hello from the job\n{seen}\n".encode())
        if path == "/release":
            released.set()
            return self.reply(200, b"released\n")
        if path == "/stream":
            # The second chunk waits for /release, so a client that reads the first proves the response streams.
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.chunk(b"first\n")
            released.wait(120)
            self.chunk(b"second\n")
            self.chunk(b"")
            return
        if path == "/big":
            mib = int(self.path.split("mib=")[1]) if "mib=" in self.path else 64
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(mib * len(CHUNK)))
            self.end_headers()
            for _ in range(mib):
                self.wfile.write(CHUNK)
            return
        if path == "/net":
            return self.reply(200, network_report().encode())
        self.reply(404, b"no such page\n")

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n)
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-sha256", hashlib.sha256(body).hexdigest())
        self.end_headers()
        self.wfile.write(body)

    def chunk(self, data):
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def websocket(self):
        key = self.headers["sec-websocket-key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            op, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = self.rfile.read(n)
            if head[1] & 0x80:
                data = unmask(data, mask)
            if op == 8:
                self.send_frame(8, data[:2])
                return
            if op == 9:
                self.send_frame(10, data)
            elif op in (1, 2):
                self.send_frame(op, data)

    def send_frame(self, op, data):
        n = len(data)
        if n < 126:
            head = struct.pack(">BB", 0x80 | op, n)
        elif n < 65536:
            head = struct.pack(">BBH", 0x80 | op, 126, n)
        else:
            head = struct.pack(">BBQ", 0x80 | op, 127, n)
        self.wfile.write(head + data)
        self.wfile.flush()


def unmask(data, mask):
    whole = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(whole, "big")).to_bytes(len(data), "big") if data else b""


def network_report():
    """What this container reaches besides its own loopback: `isolated` when nothing."""
    reached = []
    for host, port in (("1.1.1.1", 53), ("172.17.0.1", 2375), ("10.0.0.1", 80)):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect((host, port))
            reached.append(f"{host}:{port}")
        except OSError:
            pass
        finally:
            s.close()
    routes = [line for line in open("/proc/net/route").read().splitlines()[1:] if line.strip()]
    interfaces = sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else []
    return "isolated" if not reached and not routes else f"reached={reached} routes={routes} interfaces={interfaces}"


http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
