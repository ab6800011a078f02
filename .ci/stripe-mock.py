"""A minimal local stand-in for Stripe's API, for the schemathesis run:
crm-server is configured with a test key and this base URL, so the billing
routes run for real (customers, Checkout Sessions, portal sessions) instead
of answering that billing is off. Prints its port, then serves on 127.0.0.1.
"""
import http.server
import json

ANSWERS = {
    ("GET", "/v1/customers/search"): {"object": "search_result", "data": [], "has_more": False},
    ("POST", "/v1/customers"): {"id": "cus_ci", "object": "customer", "metadata": {}},
    ("POST", "/v1/checkout/sessions"): {
        "id": "cs_test_ci", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/cs_test_ci"},
    ("POST", "/v1/billing_portal/sessions"): {
        "id": "bps_ci", "object": "billing_portal.session", "url": "https://billing.stripe.com/p/session/test_ci"},
}


class Stripe(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        found = ANSWERS.get((self.command, self.path.split("?")[0]))
        status = 200 if found else 404
        body = found or {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = answer

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stripe)
print(server.server_address[1], flush=True)
server.serve_forever()
