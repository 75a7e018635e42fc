"""A stand-in for a business's system: logs every outbound message POSTed to it."""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Receiver(BaseHTTPRequestHandler):
    count = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Receiver.count += 1
        signature = self.headers.get("x-ism-signature") or self.headers.get("webhook-signature")
        print(self.path, signature, body.decode(errors="replace"), flush=True)
        answer = json.dumps({"message_id": f"demo-{Receiver.count}"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
