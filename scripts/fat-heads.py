#!/usr/bin/env python3
"""Slow, fat request heads against a real herald: 1,000 connections each send 15 KB of an
unfinished request head (API, then WebSocket handshake) and then one byte every 2 s. Prints the
server's RSS at the baseline, with the heads held, and once every connection was closed by
server.header_timeout. Usage: scripts/fat-heads.py [path/to/herald] (default
target/release/herald). Linux only (reads /proc)."""
import os, socket, subprocess, sys, tempfile, time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/herald"
PORT = 18931
CONFIG = f"""[server]
host = "127.0.0.1"
port = {PORT}
max_pending_per_ip = 0
[[apps]]
id = "app-id"
key = "app-key"
secret = "app-secret"
"""

def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
    f.write(CONFIG)
server = subprocess.Popen([BIN, "start", "--config", f.name], stderr=subprocess.DEVNULL)
try:
    time.sleep(1)
    print("baseline: %d KiB" % rss(server.pid))
    for path in ["/apps/app-id/events", "/app/app-key"]:
        socks, t0 = [], time.time()
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", PORT))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Pad: {'y' * 15000}".encode())
            socks.append(s)
        time.sleep(1)
        print("%s: 1000 unfinished 15 KB heads: %d KiB" % (path, rss(server.pid)))
        still_open = len(socks)
        while still_open and time.time() - t0 < 60:
            still_open = 0
            for s in socks:
                try:
                    s.send(b"y")
                    still_open += 1
                except OSError:
                    pass
            time.sleep(2)
        print("%s: %d still open after %.0f s; %d KiB"
              % (path, still_open, time.time() - t0, rss(server.pid)))
        for s in socks:
            s.close()
finally:
    server.terminate()
    server.wait()
    os.unlink(f.name)
