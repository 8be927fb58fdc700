// The peer for issue 9: node oidc-provider (a certified OpenID Provider) configured like yunid's
// benchmark setup: a client-credentials client whose access tokens are ES256 JWTs (resource
// indicators), an authorization-code client with PKCE, the in-memory adapter and its own login form
// (devInteractions). Started by run.sh; PORT and CC_SECRET come from the environment.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 3000);
const issuer = `http://127.0.0.1:${port}`;
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const resource = 'urn:yunid:bench:api';

const provider = new Provider(issuer, {
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
      client_secret: process.env.CC_SECRET,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1:9/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: {
    keys: [
      { ...rsa, alg: 'RS256', use: 'sig', kid: 'rs256' },
      { ...ec, alg: 'ES256', use: 'sig', kid: 'es256' },
    ],
  },
  scopes: ['openid', 'offline_access', 'api'],
  pkce: { required: () => true },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
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
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
