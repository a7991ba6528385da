"""A tiny local identity provider for the OAuth2 tests: what msal and google-auth talk to
(over HTTPS, with the test CA) and what Dovecot's oauth2 passdb asks whether a token is
good (over HTTP, token introspection, RFC 7662).

- Microsoft Entra ID's shape: GET /<tenant>/v2.0/.well-known/openid-configuration and
  POST /<tenant>/oauth2/v2.0/token (client credentials, checked against CLIENT_SECRET, for
  Exchange Online's IMAP or for Microsoft Graph: `valid` says which a token is for);
- Google's token endpoint, POST /google/token: a service account's signed JWT (checked
  with its public key: issuer, subject, scope) or an OAuth client's refresh token;
- POST /introspect for Dovecot: active, and the mailbox user the token was made for.
Every access token it issues is random and lives `expires_in` seconds.
"""

import json
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt
import trustme

from emulation.processes import HOST

CLIENT_ID = "postwerk-door"
CLIENT_SECRET = "entra-client-secret"
REFRESH_TOKEN = "google-refresh-token"
OUTLOOK_SCOPE = "https://outlook.office365.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GMAIL_SCOPE = "https://mail.google.com/"
GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"


class IdentityProvider:
    def __init__(self, ca: trustme.CA, user: str, service_account_key=None):
        self.user = user
        self.service_account_key = service_account_key  # cryptography RSA private key
        self.expires_in = 3600
        self.tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self.scopes: dict[str, str] = {}  # token -> what it was asked for
        self.token_requests = 0
        self.https = ThreadingHTTPServer((HOST, 0), self.handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(HOST).configure_cert(context)
        self.https.socket = context.wrap_socket(self.https.socket, server_side=True)
        self.http = ThreadingHTTPServer((HOST, 0), self.handler())
        for server in (self.https, self.http):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.https.server_address[1]}"

    @property
    def introspection_url(self) -> str:
        return f"http://{HOST}:{self.http.server_address[1]}/introspect"

    def close(self) -> None:
        for server in (self.https, self.http):
            server.shutdown()
            server.server_close()

    def issue(self, scope: str = "") -> dict:
        self.token_requests += 1
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + self.expires_in
        self.scopes[token] = scope
        return {"token_type": "Bearer", "access_token": token, "expires_in": self.expires_in}

    def valid(self, token: str, scope: str) -> bool:
        """Whether the token is one this provider issued for `scope`, and not expired."""
        return self.tokens.get(token, 0) > time.time() and self.scopes.get(token) == scope

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict]:
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            tenant = path.split("/")[1]
            return 200, {
                "issuer": f"{self.url}/{tenant}/v2.0",
                "authorization_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/authorize",
                "token_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/token",
            }
        if path.endswith("/oauth2/v2.0/token"):
            good = (form.get("client_id"), form.get("client_secret")) == (CLIENT_ID, CLIENT_SECRET)
            if form.get("scope") not in (OUTLOOK_SCOPE, GRAPH_SCOPE) or not good:
                reason = "AADSTS7000215: Invalid client secret provided."
                return 401, {"error": "invalid_client", "error_description": reason}
            return 200, self.issue(form["scope"])
        if path == "/google/token":
            return self.google(form)
        if path == "/introspect":
            expiry = self.tokens.get(form.get("token", ""), 0)
            active = expiry > time.time()
            return 200, {"active": active} | ({"username": self.user} if active else {})
        return 404, {"error": "not_found"}

    def google(self, form: dict[str, str]) -> tuple[int, dict]:
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") != REFRESH_TOKEN:
                return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
            return 200, self.issue()
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self.service_account_key.public_key(),
                algorithms=["RS256"],
                audience=GOOGLE_AUDIENCE,  # google-auth always names Google's endpoint
            )
        except jwt.PyJWTError as error:
            return 400, {"error": "invalid_grant", "error_description": str(error)}
        if claims.get("sub") != self.user or claims.get("scope") != GMAIL_SCOPE:
            return 401, {"error": "unauthorized_client", "error_description": "not delegated"}
        return 200, self.issue()

    def handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.respond(*provider.answer(self.path, {}))

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {name: values[0] for name, values in parse_qs(body).items()}
                self.respond(*provider.answer(self.path, form))

            def respond(self, status: int, document: dict) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *arguments):  # quiet
                pass

        return Handler
