#!/usr/bin/env python3
"""A WebSocket client for berth's CRI streaming server, on the websocket-client library
(Debian's python3-websocket). berth's e2e tests drive it; it prints one JSON object.

  ws-client.py exec URL [--protocol P] [--stdin TEXT] [--delay S] [--resize WxH]
                       [--v5-close-stdin] [--for S]
  ws-client.py portforward URL?port=N[&port=M] [--send TEXT]

An https:// URL becomes wss://, trusting only the PEM certificate of --ca FILE, or
without verification when --ca is not given.

exec (attach too) collects channels 1 (stdout), 2 (stderr) and 3 (error) until the server
closes; portforward sends TEXT on each port's data channel and collects data and error.
"""
import argparse
import base64
import json
import ssl
import sys
import time

import websocket


def connect(url, protocol, ca):
    sslopt = {"ca_certs": ca} if ca else {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
    try:
        ws = websocket.create_connection(url, subprotocols=[protocol] if protocol else None, timeout=30,
                                         sslopt=sslopt)
    except websocket.WebSocketBadStatusException as e:
        print(json.dumps({"http_status": e.status_code}))
        sys.exit(0)
    return ws


def frames(ws, b64):
    """(channel, data) for each message until the server closes."""
    while True:
        try:
            opcode, data = ws.recv_data()
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return
        if not data:
            continue
        if b64:
            yield data[0] - ord("0"), base64.b64decode(data[1:])
        else:
            yield data[0], data[1:]


def send(ws, b64, channel, data):
    if b64:
        ws.send(chr(ord("0") + channel) + base64.b64encode(data).decode())
    else:
        ws.send_binary(bytes([channel]) + data)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("url")
    p.add_argument("--protocol", default="v4.channel.k8s.io")
    p.add_argument("--stdin")
    p.add_argument("--resize")
    p.add_argument("--v5-close-stdin", action="store_true")
    p.add_argument("--send", default="")
    p.add_argument("--delay", type=float, default=0.2, help="seconds before sending stdin")
    p.add_argument("--for", dest="duration", type=float, help="read this long, then hang up")
    p.add_argument("--ca", help="PEM certificate to trust for an https:// URL")
    a = p.parse_args()
    url = a.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    ws = connect(url, a.protocol, a.ca)
    b64 = "base64" in a.protocol
    out = {"http_status": 101, "protocol": ws.getsubprotocol()}
    if a.mode == "exec":
        if a.resize:
            w, h = a.resize.split("x")
            send(ws, b64, 4, json.dumps({"Width": int(w), "Height": int(h)}).encode())
        if a.stdin is not None:
            time.sleep(a.delay)
            send(ws, b64, 0, a.stdin.encode())
            if a.v5_close_stdin:
                ws.send_binary(bytes([255, 0]))
        chans = {1: b"", 2: b"", 3: b""}
        if a.duration:
            ws.settimeout(a.duration)
        try:
            for ch, data in frames(ws, b64):
                if ch in chans:
                    chans[ch] += data
        except websocket.WebSocketTimeoutException:
            out["hung_up"] = True
            ws.close()
        out.update(stdout=chans[1].decode(errors="replace"), stderr=chans[2].decode(errors="replace"),
                   error=chans[3].decode(errors="replace"))
    else:
        got = {}
        sent = set()
        for ch, data in frames(ws, b64):
            port_index, is_error = ch // 2, ch % 2 == 1
            entry = got.setdefault(port_index, {"prefix": {}, "data": b"", "error": b""})
            key = "error" if is_error else "data"
            if key not in entry["prefix"]:
                entry["prefix"][key] = int.from_bytes(data[:2], "little")
                data = data[2:]
                if not is_error and port_index not in sent:
                    sent.add(port_index)
                    send(ws, b64, 2 * port_index, a.send.encode())
            entry[key] += data
            # Read on until the server closes: it does once every forwarded
            # connection has ended, after the pod's last bytes (stopping at the end of
            # the headers lost a body that came in a later frame).
        out["ports"] = {str(e["prefix"].get("data", e["prefix"].get("error"))):
                        {"data": e["data"].decode(errors="replace"), "error": e["error"].decode(errors="replace")}
                        for e in got.values()}
        ws.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
