#!/usr/bin/env python3
"""An example agent in Python, standard library only, acting for a user
through agentid-sidecar.

It reads its identity from the sidecar, asks for a delegation from the user
whose OIDC ID token it was given, calls a service through the sidecar's
egress proxy (plain HTTP here, mTLS with a delegated JWT-SVID from the
sidecar on), prints the service's answer, and revokes the delegation.

Configuration, all from the environment:
  SIDECAR_URL      the sidecar's API, default http://127.0.0.1:15080
  SIDECAR_SOCKET   the sidecar's API unix socket (instead of SIDECAR_URL)
  PROXY_URL        the sidecar's egress proxy, default http://127.0.0.1:15001
  ROUTE            the proxy route of the service, default crm
  SERVICE_PATH     the path to call, default /whoami
  USER_TOKEN       the user's OIDC ID token (or USER_TOKEN_FILE)
  SCOPES           space-separated scopes, default "campaigns:read"
  TTL              delegation lifetime, default 15m
"""

import http.client
import json
import os
import socket
import sys
import urllib.parse


class SidecarError(Exception):
    """An error answer of the sidecar: {"error": code, "message": text}."""

    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket, for a sidecar listening on one."""

    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def connection(base_url, unix_socket=None):
    if unix_socket:
        return UnixHTTPConnection(unix_socket)
    u = urllib.parse.urlsplit(base_url)
    if u.scheme != "http":
        raise ValueError(f"{base_url}: the sidecar speaks plain http on loopback")
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)


def request(conn, method, path, body=None, headers=None):
    """Send one request; return the decoded JSON answer or raise SidecarError."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = {"error": "not_json", "message": raw[:200].decode(errors="replace")}
    if resp.status >= 400:
        raise SidecarError(resp.status, answer.get("error", "?"), answer.get("message", answer.get("error_description", "")))
    return answer


def user_token():
    path = os.environ.get("USER_TOKEN_FILE")
    if path:
        with open(path) as f:
            return f.read().strip()
    token = os.environ.get("USER_TOKEN", "")
    if not token:
        raise ValueError("set USER_TOKEN or USER_TOKEN_FILE to the user's OIDC ID token")
    return token


def main():
    api = connection(os.environ.get("SIDECAR_URL", "http://127.0.0.1:15080"), os.environ.get("SIDECAR_SOCKET"))
    proxy = connection(os.environ.get("PROXY_URL", "http://127.0.0.1:15001"))
    route = os.environ.get("ROUTE", "crm")
    service_path = os.environ.get("SERVICE_PATH", "/whoami")

    me = request(api, "GET", "/v1/identity")
    print(f"agent: {me['spiffe_id']}", file=sys.stderr)

    created = request(api, "POST", "/v1/delegations", {
        "user_token": user_token(),
        "scopes": os.environ.get("SCOPES", "campaigns:read").split(),
        "ttl": os.environ.get("TTL", "15m"),
        "intent": "example: ask the service who is calling",
    })
    d = created["delegation"]
    print(f"delegation: {d['id']} for {d['user']['sub']} scopes {' '.join(d['scopes'])}", file=sys.stderr)
    try:
        # A token could be fetched directly, e.g. for a client that speaks
        # mTLS itself; here it only shows the expiry.
        tok = request(api, "GET", "/v1/token?" + urllib.parse.urlencode({"audience": "example", "delegation": d["id"]}))
        print(f"token for audience 'example' expires {tok['expires_at']}", file=sys.stderr)

        # The egress proxy: plain HTTP naming the route as Host; the sidecar
        # adds mTLS and the delegated token. An Authorization header sent
        # here would be stripped, never forwarded.
        answer = request(proxy, "GET", service_path, headers={"Host": route, "X-Agentid-Delegation": d["id"]})
        print(json.dumps(answer, sort_keys=True))
    finally:
        request(api, "DELETE", f"/v1/delegations/{urllib.parse.quote(d['id'])}?reason=task+done")
        print(f"revoked {d['id']}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except (SidecarError, ValueError, OSError) as e:
        print(f"python-agent: {e}", file=sys.stderr)
        sys.exit(1)
