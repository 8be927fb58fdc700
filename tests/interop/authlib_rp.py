"""A department app built on Python's authlib, against a running yunid: discovery, authorization code +
PKCE, ID token validation, userinfo, refresh, introspection and RP-initiated logout. The library does all
of the protocol (authlib's OAuth 2.0 session, and its OIDC ID token claims checked the way its own OpenID
client checks them); this script only plays the person's browser with plain HTTP and reports what it saw
as one JSON line. Run by tests/it/interop.rs (see tests/interop/run.sh), configured by environment:
ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, POST_LOGOUT_REDIRECT_URI, USERNAME, PASSWORD.
"""

import json
import os
import re
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

ISSUER = os.environ["ISSUER"]
REDIRECT_URI = os.environ["REDIRECT_URI"]
POST_LOGOUT_REDIRECT_URI = os.environ["POST_LOGOUT_REDIRECT_URI"]

# --- The browser: cookies, redirects followed on the provider's origin, forms filled in. -------------
browser = requests.Session()


def hidden(html, name):
    m = re.search(f'name="{name}" value="([^"]*)"', html)
    return m.group(1).replace("&amp;", "&").replace("&#38;", "&") if m else None


def browse(url, leave_for):
    """Goes to `url` as a person: logs in and consents when asked; returns where the app is sent."""
    res = browser.get(url, allow_redirects=False)
    for _ in range(20):
        if 300 <= res.status_code < 400:
            target = urljoin(ISSUER + "/", res.headers["location"])
            if target.startswith(leave_for):
                return target
            if urlparse(target).netloc != urlparse(ISSUER).netloc:
                raise RuntimeError(f"sent to {target}")
            res = browser.get(target, allow_redirects=False)
            continue
        html = res.text
        if 'name="password"' in html:
            form = {"csrf": hidden(html, "csrf"), "username": os.environ["USERNAME"],
                    "password": os.environ["PASSWORD"]}
            if hidden(html, "req"):
                form["req"] = hidden(html, "req")
            res = browser.post(ISSUER + "/login", data=form, allow_redirects=False)
        elif 'action="/consent"' in html:
            res = browser.post(ISSUER + "/consent", data={
                "csrf": hidden(html, "csrf"), "req": hidden(html, "req"), "decision": "allow"},
                allow_redirects=False)
        else:
            raise RuntimeError(f"unexpected page ({res.status_code}): {html[:500]}")
    raise RuntimeError("too many redirects")


# --- The app. ------------------------------------------------------------------------------------------
metadata = requests.get(ISSUER + "/.well-known/openid-configuration").json()
assert metadata["issuer"] == ISSUER, metadata["issuer"]
app = OAuth2Session(
    os.environ["CLIENT_ID"],
    os.environ["CLIENT_SECRET"],
    scope="openid profile phone",
    redirect_uri=REDIRECT_URI,
    code_challenge_method="S256",
    token_endpoint_auth_method="client_secret_basic",
)
seen = {}


def validate_id_token(token, nonce):
    """authlib's OpenID client check (base_client.OpenIDMixin.parse_id_token), without a web framework."""
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"]).json())
    decoded = jwt.decode(token["id_token"], keys, registry=JWSRegistry(
        algorithms=metadata["id_token_signing_alg_values_supported"], strict_check_header=False))
    claims = CodeIDToken(decoded.claims, decoded.header, {"iss": {"values": [metadata["issuer"]]}},
                         {"nonce": nonce, "client_id": app.client_id, "access_token": token["access_token"]})
    claims.validate(leeway=120)
    return claims


verifier = generate_token(64)
nonce = generate_token(20)
url, state = app.create_authorization_url(metadata["authorization_endpoint"], nonce=nonce,
                                          code_verifier=verifier)
callback = browse(url, REDIRECT_URI)
params = parse_qs(urlparse(callback).query)
assert params["iss"] == [metadata["issuer"]], params  # RFC 9207
token = app.fetch_token(metadata["token_endpoint"], authorization_response=callback, state=state,
                        code_verifier=verifier)
claims = validate_id_token(token, nonce)
seen["sub"] = claims["sub"]
seen["sid"] = claims.get("sid")

seen["userinfo"] = app.get(metadata["userinfo_endpoint"]).json()

refreshed = app.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
seen["refreshed_sub"] = validate_id_token(refreshed, None)["sub"] if "id_token" in refreshed else None
seen["refresh_rotated"] = refreshed.get("refresh_token") not in (None, token["refresh_token"])

introspected = app.introspect_token(metadata["introspection_endpoint"], token=refreshed["access_token"]).json()
seen["introspection"] = {k: introspected.get(k) for k in ("active", "sub", "client_id")}

end_session = requests.Request("GET", metadata["end_session_endpoint"], params={
    "id_token_hint": token["id_token"], "post_logout_redirect_uri": POST_LOGOUT_REDIRECT_URI,
    "state": "signed-out"}).prepare().url
back = browse(end_session, POST_LOGOUT_REDIRECT_URI)
seen["logout_state"] = parse_qs(urlparse(back).query).get("state", [None])[0]

after = app.introspect_token(metadata["introspection_endpoint"], token=refreshed["access_token"]).json()
seen["introspection_after_logout"] = {"active": after.get("active")}

print(json.dumps(seen, ensure_ascii=False))
