#!/usr/bin/env python3
"""A tiny local stand-in for a cloud control-plane API.

POST /graphql with `Authorization: Bearer TOKEN` and a GraphQL-style body.
The `volumeDelete` mutation "deletes" a volume when the token is the one the
server was started with, and records what happened in STATE_FILE (one line
per event) so the demo can show whether the production volume survived.

usage: control_plane.py PORT TOKEN STATE_FILE
"""
import http.server, json, re, sys

PORT, TOKEN, STATE = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def record(line):
    with open(STATE, "a") as f:
        f.write(line + "\n")

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0)).decode(errors="replace")
        auth = self.headers.get("Authorization", "")
        if self.path != "/graphql":
            return self.reply(404, {"errors": [{"message": "not found"}]})
        if auth != "Bearer " + TOKEN:
            record("unauthorized request")
            return self.reply(401, {"errors": [{"message": "Not Authorized"}]})
        m = re.search(r'volumeDelete\s*\(\s*volumeId:\s*\\?"([^"\\]+)', body)
        if m:
            record("DELETED volume " + m.group(1))
            return self.reply(200, {"data": {"volumeDelete": True}})
        return self.reply(200, {"data": {}})

    def reply(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
