// A department app built on the Node package openid-client (a certified relying party), against a
// running yunid: discovery, authorization code + PKCE, ID token validation, userinfo, refresh,
// introspection and RP-initiated logout. The library does all of the protocol; this script only plays
// the person's browser with plain HTTP (login form, consent form, cookies) and reports what it saw as
// one JSON line. Run by tests/it/interop.rs (see tests/interop/run.sh), configured by environment:
// ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, POST_LOGOUT_REDIRECT_URI, USERNAME, PASSWORD.
import * as client from 'openid-client';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const issuer = new URL(env('ISSUER'));
const redirectUri = env('REDIRECT_URI');
const postLogoutRedirectUri = env('POST_LOGOUT_REDIRECT_URI');

// --- The browser: a cookie jar, redirects followed on the provider's origin, forms filled in. ---------
const jar = new Map();
async function request(url, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(';');
    const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
    const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '';
    if (expired) jar.delete(name.trim());
    else jar.set(name.trim(), value.trim());
  }
  return res;
}
const hidden = (html, name) => {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  return m ? m[1].replaceAll('&amp;', '&').replaceAll('&#38;', '&') : undefined;
};
const post = (url, fields) =>
  request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });

/** Goes to `url` as a person: logs in and consents when asked; returns the URL the app gets back. */
async function browse(url, leaveFor) {
  let res = await request(url);
  for (let hop = 0; hop < 20; hop++) {
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location'), issuer);
      if (next.href.startsWith(leaveFor)) return next;
      if (next.origin !== issuer.origin) throw new Error(`sent to ${next}`);
      res = await request(next);
      continue;
    }
    const html = await res.text();
    if (html.includes('name="password"')) {
      const form = { csrf: hidden(html, 'csrf'), username: env('USERNAME'), password: env('PASSWORD') };
      const req = hidden(html, 'req');
      if (req) form.req = req;
      res = await post(new URL('/login', issuer), form);
    } else if (html.includes('action="/consent"')) {
      res = await post(new URL('/consent', issuer), {
        csrf: hidden(html, 'csrf'),
        req: hidden(html, 'req'),
        decision: 'allow',
      });
    } else {
      throw new Error(`unexpected page (${res.status}): ${html.slice(0, 500)}`);
    }
  }
  throw new Error('too many redirects');
}

// --- The app: everything protocol is the library's. ---------------------------------------------------
const config = await client.discovery(
  issuer,
  env('CLIENT_ID'),
  undefined,
  client.ClientSecretBasic(env('CLIENT_SECRET')),
  { execute: [client.allowInsecureRequests] },
);
const seen = {};

const codeVerifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const authorizationUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile phone',
  code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
  code_challenge_method: 'S256',
  state,
  nonce,
});
const callback = await browse(authorizationUrl, redirectUri);
// Checks state, the RFC 9207 iss parameter, the ID token (signature, iss, aud, exp, nonce) and PKCE.
const tokens = await client.authorizationCodeGrant(config, callback, {
  pkceCodeVerifier: codeVerifier,
  expectedState: state,
  expectedNonce: nonce,
  idTokenExpected: true,
});
const claims = tokens.claims();
seen.sub = claims.sub;
seen.sid = claims.sid;

const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
seen.userinfo = userinfo;

const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
seen.refreshed_sub = refreshed.claims()?.sub;
seen.refresh_rotated = refreshed.refresh_token !== undefined && refreshed.refresh_token !== tokens.refresh_token;

const introspected = await client.tokenIntrospection(config, refreshed.access_token);
seen.introspection = { active: introspected.active, sub: introspected.sub, client_id: introspected.client_id };

const endSession = client.buildEndSessionUrl(config, {
  id_token_hint: tokens.id_token,
  post_logout_redirect_uri: postLogoutRedirectUri,
  state: 'signed-out',
});
const back = await browse(endSession, postLogoutRedirectUri);
seen.logout_state = back.searchParams.get('state');

const after = await client.tokenIntrospection(config, refreshed.access_token);
seen.introspection_after_logout = { active: after.active };

console.log(JSON.stringify(seen));
