#!/usr/bin/env python3
"""A stand-in for the OpenAI Responses API that makes codex run one command.

usage: fake_responses.py PORT COMMAND READY_FILE

Runs inside the sandbox (its own loopback). The first request is answered
with a call of codex's `exec` tool whose script runs COMMAND through
`tools.exec_command`; the next one (carrying the tool's output) with a final
message that quotes that output, so codex prints what the command did.
READY_FILE is created once the port is bound.
"""
import http.server, json, sys


def sse(event):
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # WebSocket upgrade attempts: not offered
        self.send_response(404)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        outputs = [i for i in body.get("input", []) if i.get("type", "").endswith("call_output")]
        if not outputs:
            script = (
                f"const r = await tools.exec_command({{cmd: {json.dumps(sys.argv[2])}, login: false}});"
                " text(JSON.stringify(r));"
            )
            item = {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_1",
                    "name": "exec", "input": script, "status": "completed"}
        else:
            item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "annotations": [],
                                 "text": "tool output: " + json.dumps(outputs[-1].get("output"))}]}
        usage = {"input_tokens": 1, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 2}
        rid = f"resp_{len(outputs)}"
        out = sse({"type": "response.created", "response": {"id": rid}})
        out += sse({"type": "response.output_item.done", "output_index": 0, "item": item})
        out += sse({"type": "response.completed", "response": {"id": rid, "usage": usage}})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
open(sys.argv[3], "w").close()
server.serve_forever()
