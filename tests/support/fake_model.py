#!/usr/bin/env python3
"""A stand-in model that makes an agent act in the project, then finish.

usage: fake_model.py API PORT ACTION READY_FILE SEEN_FILE

Runs inside the sandbox, on its own loopback: the sandbox has no route out
but guard's proxy, and this machine none to the real APIs. The first request
that offers the agent's shell tool is answered with a call of that tool
running the shell command ACTION; the request that carries the tool's result
gets a final text, and that result is appended to SEEN_FILE, so the test can
check on the host what the model was sent back. Other requests (titles,
routing) get a short text, or the simplest JSON their schema allows.
READY_FILE is created once the port is bound.

API is the wire format the agent speaks:
  responses  OpenAI Responses API, streamed (codex: its `exec` tool)
  messages   Anthropic Messages API, streamed (Claude Code: `Bash`)
  gemini     Gemini generateContent, streamed or not (`run_shell_command`)
  chat       OpenAI chat completions, streamed or not (opencode: `bash`)
  chat-edit  OpenAI chat completions for an agent that edits by text
             (aider): every reply is ACTION itself, an edit in the agent's
             format, and SEEN_FILE gets the user messages, which carry the
             files the agent read into the chat
"""
import http.server, json, sys

API, PORT, ACTION, READY, SEEN = sys.argv[1:6]
FINAL = "done: the command ran"


def seen(result):
    with open(SEEN, "a") as f:
        f.write(result if isinstance(result, str) else json.dumps(result))
        f.write("\n")


def sse(data, event=None):
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def responses(body, path):
    outputs = [i for i in body.get("input", []) if i.get("type", "").endswith("call_output")]
    if not outputs:
        script = (
            f"const r = await tools.exec_command({{cmd: {json.dumps(ACTION)}, login: false}});"
            " text(JSON.stringify(r));"
        )
        item = {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_1",
                "name": "exec", "input": script, "status": "completed"}
    else:
        seen(outputs[-1].get("output"))
        item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "annotations": [], "text": FINAL}]}
    usage = {"input_tokens": 1, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": 2}
    rid = f"resp_{len(outputs)}"
    out = sse({"type": "response.created", "response": {"id": rid}}, "response.created")
    out += sse({"type": "response.output_item.done", "output_index": 0, "item": item},
               "response.output_item.done")
    out += sse({"type": "response.completed", "response": {"id": rid, "usage": usage}},
               "response.completed")
    return "text/event-stream", out


def messages(body, path):
    last = body.get("messages", [{}])[-1]
    content = last.get("content") if last.get("role") == "user" else None
    results = [b for b in content or [] if isinstance(b, dict) and b.get("type") == "tool_result"]
    if results:
        seen(results[-1].get("content"))
    offered = any(t.get("name") == "Bash" for t in body.get("tools", []))
    if offered and not results:
        block = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}
        delta = {"type": "input_json_delta",
                 "partial_json": json.dumps({"command": ACTION, "description": "act"})}
        stop, full = "tool_use", dict(block, input={"command": ACTION, "description": "act"})
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": FINAL}
        stop, full = "end_turn", {"type": "text", "text": FINAL}
    usage = {"input_tokens": 1, "output_tokens": 1}
    message = {"id": "msg_1", "type": "message", "role": "assistant",
               "model": body.get("model", "stand-in"), "stop_reason": None,
               "stop_sequence": None, "usage": usage}
    if not body.get("stream"):
        message.update(content=[full], stop_reason=stop)
        return "application/json", json.dumps(message).encode()
    events = [
        {"type": "message_start", "message": dict(message, content=[])},
        {"type": "content_block_start", "index": 0, "content_block": block},
        {"type": "content_block_delta", "index": 0, "delta": delta},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
         "usage": {"output_tokens": 1}},
        {"type": "message_stop"},
    ]
    return "text/event-stream", b"".join(sse(e, e["type"]) for e in events)


def example(schema):
    """The simplest value of a JSON schema: side requests (gemini-cli's
    model router) ask for JSON and retry until they get it."""
    kind = str(schema.get("type", "object")).lower()
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {k: example(v) for k, v in schema.get("properties", {}).items()}
    return {"string": "stand-in", "integer": 1, "number": 1, "boolean": False}.get(kind, [])


def gemini(body, path):
    parts = (body.get("contents") or [{}])[-1].get("parts", [])
    results = [p["functionResponse"] for p in parts if "functionResponse" in p]
    if results:
        seen(results[-1].get("response"))
    offered = any(f.get("name") == "run_shell_command"
                  for t in body.get("tools", []) for f in t.get("functionDeclarations", []))
    schema = body.get("generationConfig", {}).get("responseJsonSchema")
    if offered and not results:
        part = {"functionCall": {"name": "run_shell_command", "args": {"command": ACTION}}}
    elif schema:
        part = {"text": json.dumps(example(schema))}
    else:
        part = {"text": FINAL}
    reply = {"candidates": [{"content": {"role": "model", "parts": [part]},
                             "finishReason": "STOP", "index": 0}],
             "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1,
                               "totalTokenCount": 2}}
    if path.endswith(":streamGenerateContent"):
        return "text/event-stream", sse(reply)
    return "application/json", json.dumps(reply).encode()


def chat_reply(body, message, finish):
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    head = {"id": "chatcmpl-1", "created": 0, "model": body.get("model", "stand-in")}
    if not body.get("stream"):
        choice = {"index": 0, "message": dict(message, role="assistant"), "finish_reason": finish}
        reply = dict(head, object="chat.completion", choices=[choice], usage=usage)
        return "application/json", json.dumps(reply).encode()
    if "tool_calls" in message:
        message = dict(message, tool_calls=[dict(c, index=i)
                                            for i, c in enumerate(message["tool_calls"])])
    chunk = dict(head, object="chat.completion.chunk")
    out = sse(dict(chunk, choices=[{"index": 0, "delta": dict(message, role="assistant"),
                                    "finish_reason": None}]))
    out += sse(dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": finish}],
                    usage=usage))
    return "text/event-stream", out + b"data: [DONE]\n\n"


def chat(body, path):
    msgs = body.get("messages", [])
    if msgs and msgs[-1].get("role") == "tool":
        seen(msgs[-1].get("content"))
        return chat_reply(body, {"content": FINAL}, "stop")
    if not any(t.get("function", {}).get("name") == "bash" for t in body.get("tools", [])):
        return chat_reply(body, {"content": FINAL}, "stop")
    call = {"id": "call_1", "type": "function",
            "function": {"name": "bash", "arguments": json.dumps(
                {"command": ACTION, "description": "act"})}}
    return chat_reply(body, {"content": None, "tool_calls": [call]}, "tool_calls")


def chat_edit(body, path):
    for m in body.get("messages", []):
        if m.get("role") == "user":
            seen(m.get("content"))
    return chat_reply(body, {"content": ACTION}, "stop")


HANDLERS = {"responses": responses, "messages": messages, "gemini": gemini, "chat": chat,
            "chat-edit": chat_edit}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, kind, out):
        self.send_response(code)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self):  # model lists, WebSocket upgrades: not offered
        self.reply(404, "application/json", b"{}")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        path = self.path.split("?")[0]
        if path.endswith("/count_tokens"):
            return self.reply(200, "application/json", b'{"input_tokens": 1}')
        if path.endswith(":countTokens"):
            return self.reply(200, "application/json", b'{"totalTokens": 1}')
        self.reply(200, *HANDLERS[API](body, path))


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler)
open(READY, "w").close()
server.serve_forever()
