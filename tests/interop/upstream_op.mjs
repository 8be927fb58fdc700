// node oidc-provider (a certified OpenID Provider) as an upstream provider of yunid, for
// tests/it/federation.rs. One client, yunid: code flow with PKCE, client_secret_basic, RS256 ID tokens,
// back-channel logout. Accounts are whoever logs in on the development login page (devInteractions);
// an account named by a resident ID number is asserted with that number at the "high" level of assurance.
// Started by the test with PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI and LOGOUT_URI in the environment;
// prints "ready" once it listens.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const salt = randomBytes(16).toString('hex');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID,
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [process.env.REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      backchannel_logout_uri: process.env.LOGOUT_URI,
      backchannel_logout_session_required: true,
      subject_type: 'pairwise',
    },
  ],
  jwks: { keys: [{ ...rsa, use: 'sig', alg: 'RS256', kid: 'node-rsa-1' }] },
  claims: {
    openid: ['sub'],
    profile: ['name'],
    identity: ['resident_id', 'loa'],
  },
  features: {
    devInteractions: { enabled: true },
    claimsParameter: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  pkce: { required: () => true },
  // Pairwise subjects: the `sub` yunid sees is opaque (never the login, which may be a number).
  subjectTypes: ['public', 'pairwise'],
  async pairwiseIdentifier(ctx, accountId, client) {
    return createHash('sha256').update(`${client.sectorIdentifier}|${accountId}|${salt}`).digest('hex');
  },
  async findAccount(ctx, id) {
    const numbered = /^[0-9]{17}[0-9X]$/.test(id);
    return {
      accountId: id,
      async claims() {
        return numbered
          ? { sub: id, name: '李四', resident_id: id, loa: 'high' }
          : { sub: id, name: id };
      },
    };
  },
});
provider.proxy = false;
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(port, '127.0.0.1', () => console.log('ready'));
