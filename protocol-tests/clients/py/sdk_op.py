"""Runs one call of the official Python server SDK (PyPI `pusher`) against Herald.

Usage: sdk_op.py '<json: {"port","app_id","key","secret","master_key","op","args"}>'
Prints one JSON line: {"ok": true, "status": <http status>, "result": <parsed body>}
or {"ok": false, "status": <status or null>, "error": "<type>: <message>"}.
The node runner asserts on it and on what WebSocket subscribers received.
"""
import json
import sys

import pusher
import pusher.requests as backend

last_status = {"status": None}
_orig = backend.process_response


def _recording(status, body):
    last_status["status"] = status
    return _orig(status, body)


backend.process_response = _recording


def main():
    req = json.loads(sys.argv[1])
    kwargs = dict(app_id=req["app_id"], key=req["key"], secret=req["secret"], ssl=False,
                  host="127.0.0.1", port=int(req["port"]), timeout=4)
    if req.get("master_key"):
        kwargs["encryption_master_key_base64"] = req["master_key"]
    client = pusher.Pusher(**kwargs)
    op, args = req["op"], req.get("args", [])
    try:
        if op == "authenticate_channel":
            result = client.authenticate(*args)
        else:
            result = getattr(client, op)(*args)
        print(json.dumps({"ok": True, "status": last_status["status"], "result": result}))
    except Exception as e:  # report, the runner decides
        print(json.dumps({"ok": False, "status": last_status["status"], "error": "%s: %s" % (type(e).__name__, e)}))


if __name__ == "__main__":
    main()
