"""A small stdio MCP server that misbehaves on purpose (tests/test_mcp_failures.py).

Modes: ok (a JSON key-value store in $STATE_FILE, re-read every call), exit (dies before answering),
junk (prints non-protocol text first), hang_start, hang_call (never answers `put`), crash_call
(exits during `put`), bad_schema, no_tools, caching (keeps its state in memory: restores are not seen).
"""

import json
import os
import sys
import time

MODE = sys.argv[1]
STATE = os.environ["STATE_FILE"]
memory = {}

TOOLS = [
    {"name": "put", "description": "Store a value under a key.",
     "inputSchema": {"type": "object", "properties": {"key": {"type": "string"}, "value": {"type": "string"}},
                     "required": ["key", "value"]}, "annotations": {"readOnlyHint": False}},
    {"name": "dump", "description": "All stored values.", "inputSchema": {"type": "object", "properties": {}},
     "annotations": {"readOnlyHint": True}},
]
if MODE == "bad_schema":
    TOOLS[0]["inputSchema"] = {"type": "object", "properties": {"key": {"type": 12}}}
if MODE == "no_tools":
    TOOLS = []


def load():
    if MODE == "caching":
        return memory
    try:
        with open(STATE) as f:
            return json.load(f)
    except OSError:
        return {}


def save(data):
    if MODE == "caching":
        memory.update(data)
    with open(STATE, "w") as f:
        json.dump(data, f, sort_keys=True)


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


if MODE == "exit":
    sys.stderr.write("bad server: missing configuration, giving up\n")
    sys.exit(3)
if MODE == "junk":
    print("Starting server on stdio... welcome!", flush=True)
if MODE == "hang_start":
    time.sleep(3600)

for line in sys.stdin:
    req = json.loads(line)
    method, rid = req.get("method"), req.get("id")
    if rid is None:
        continue
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "protocolVersion": req["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "bad-server", "version": "0.0.1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        name, args = req["params"]["name"], req["params"].get("arguments", {})
        if name == "put" and MODE == "hang_call":
            time.sleep(3600)
        if name == "put" and MODE == "crash_call":
            os._exit(9)
        data = load()
        if name == "put":
            data[args["key"]] = args["value"]
            save(data)
            text = json.dumps({"stored": args["key"]})
        else:
            text = json.dumps(data, sort_keys=True)
        send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": text}]}})
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "unknown method"}})
