// The peer for issue 9: node oidc-provider (a certified OpenID Provider) configured like yunid's
// benchmark setup:
// - bench-cc: client credentials, access tokens are ES256 JWTs for the resource urn:yunid:bench:api
//   (resource indicators); it also calls introspection. The peer does not introspect JWT access
//   tokens, so the introspect scenario asks for the resource urn:yunid:bench:opaque (opaque tokens).
// - bench-app: authorization code with PKCE S256 and refresh tokens rotated on every use (yunid
//   rotates every time); its access tokens carry no resource audience, so they are opaque tokens
//   that userinfo accepts. ID tokens RS256, or PEER_ID_TOKEN_ALG (e.g. ES256).
// - the provider's own login and consent pages (devInteractions), which accept any login without
//   checking a password. A person's consent to the app is remembered across browsers, as yunid
//   remembers it.
// - PEER_ADAPTER=memory (default): the provider's in-memory adapter (a development setting: a restart
//   loses everything, a second node sees nothing), the consent memory in a Map.
//   PEER_ADAPTER=redis: sessions, interactions, grants, codes and tokens in Redis (PEER_REDIS_URL,
//   default redis://127.0.0.1:6379) through redis_adapter.mjs, the consent memory there too; every key
//   under a prefix of this run, removed on SIGTERM.
// Started by run.sh; PORT, CC_SECRET and APP_SECRET come from the environment.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';
import { redisAdapter } from './redis_adapter.mjs';

const port = Number(process.env.PORT || 3000);
const issuer = `http://127.0.0.1:${port}`;
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const resource = 'urn:yunid:bench:api';
const opaqueResource = 'urn:yunid:bench:opaque';
const idTokenAlg = process.env.PEER_ID_TOKEN_ALG || 'RS256';

const adapterKind = process.env.PEER_ADAPTER || 'memory';
let adapter;
let grants = new Map();
let clear = async () => {};
if (adapterKind === 'redis') {
  const prefix = `yunid-bench-peer:${randomBytes(6).toString('hex')}:`;
  const redis = redisAdapter(process.env.PEER_REDIS_URL || 'redis://127.0.0.1:6379', prefix);
  adapter = redis.RedisAdapter;
  grants = redis.consents;
  clear = redis.clear;
} else if (adapterKind !== 'memory') {
  throw new Error(`PEER_ADAPTER must be memory or redis, not ${adapterKind}`);
}

// Grant ids by `${accountId} ${clientId}`: a fresh browser of a person who consented before finds
// the grant (the default looks only in the browser's session).
async function loadExistingGrant(ctx) {
  const { client, session, result } = ctx.oidc;
  const key = `${session.accountId} ${client.clientId}`;
  let remembered;
  const grantId = result?.consent?.grantId
    || session.grantIdFor(client.clientId)
    || (session.accountId && (remembered = await grants.get(key)));
  if (!grantId) return undefined;
  const grant = await ctx.oidc.provider.Grant.find(grantId);
  if (grant && session.accountId && grantId !== remembered) await grants.set(key, grantId);
  return grant;
}

const provider = new Provider(issuer, {
  ...(adapter ? { adapter } : {}),
  clients: [
    {
      client_id: 'bench-cc',
      client_secret: process.env.CC_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'api',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: 'bench-app',
      client_secret: process.env.APP_SECRET || process.env.CC_SECRET,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1:9/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: idTokenAlg,
    },
  ],
  jwks: {
    keys: [
      { ...rsa, alg: 'RS256', use: 'sig', kid: 'rs256' },
      { ...ec, alg: 'ES256', use: 'sig', kid: 'es256' },
    ],
  },
  scopes: ['openid', 'offline_access', 'api'],
  claims: { openid: ['sub'], profile: ['name'] },
  // devInteractions signs in whatever login is typed: the account is that login.
  findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id, name: `Bench ${id}` }) }),
  pkce: { required: () => true },
  // Like yunid: a refresh token with every code (no offline_access and prompt=consent needed), and a
  // new one on every refresh.
  issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  loadExistingGrant,
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Only the service client gets the API audience; the app's token stays a userinfo token.
      defaultResource: (ctx, client) => (client.clientId === 'bench-cc' ? resource : undefined),
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => (indicator === opaqueResource
        ? {
          scope: 'api', audience: opaqueResource, accessTokenTTL: 600, accessTokenFormat: 'opaque',
        }
        : {
          scope: 'api',
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
    },
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));
const server = provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider (${adapterKind} adapter) listening on ${issuer}`));
process.on('SIGTERM', () => {
  server.close();
  clear().then(() => process.exit(0), (err) => { console.error('cleanup failed', err); process.exit(1); });
});
