// A service-hall kiosk built on the Node package openid-client (a certified relying party), against a
// running yunid: the device authorization grant (RFC 8628). The library discovers the device
// authorization endpoint, starts the flow and polls the token endpoint with its own loop (honouring
// `interval`, `authorization_pending` and `slow_down`); the person's side is played by the Rust test.
// Prints one JSON line when the flow has started ({"step":"started", …}) and one when it ended
// ({"step":"done", …} or {"step":"error","error":…}). Run by tests/it/device.rs; configured by
// ISSUER, CLIENT_ID, CLIENT_SECRET.
import * as client from 'openid-client';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

let polls = 0;
const counting = (url, options) => {
  if (String(url).endsWith('/token')) polls += 1;
  return fetch(url, options);
};
const config = await client.discovery(
  new URL(env('ISSUER')),
  env('CLIENT_ID'),
  undefined,
  client.ClientSecretBasic(env('CLIENT_SECRET')),
  { execute: [client.allowInsecureRequests] },
);
config[client.customFetch] = counting;

const started = await client.initiateDeviceAuthorization(config, { scope: 'openid profile' });
console.log(JSON.stringify({
  step: 'started',
  user_code: started.user_code,
  verification_uri: started.verification_uri,
  verification_uri_complete: started.verification_uri_complete,
  interval: started.interval,
}));

try {
  const tokens = await client.pollDeviceAuthorizationGrant(config, started);
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  console.log(JSON.stringify({
    step: 'done',
    sub: claims.sub,
    acr: claims.acr,
    userinfo_sub: userinfo.sub,
    polls,
  }));
} catch (e) {
  console.log(JSON.stringify({ step: 'error', error: e.error ?? e.code ?? String(e), polls }));
}
