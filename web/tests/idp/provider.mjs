// A real, certified OpenID provider (the npm package oidc-provider, by panva) for the
// end-to-end tests of single sign-on: started by the Rust test on a loopback port over HTTPS,
// with its own login, consent and device pages (its development interactions). Nothing here
// decides a test's outcome: the accounts live in a JSON file the test rewrites (a user removed
// from a group, say), read again on every sign-in and refresh. Every start signs with a new
// key (a new `kid`), so restarting the provider rotates its keys.
//
// Environment: IDP_PORT, IDP_CERT, IDP_KEY (PEM files), IDP_CLIENTS (JSON array of clients),
// IDP_ACCOUNTS (path of {"alice": {"groups": ["ops"], "email": "..."}}).
import { createServer } from 'node:https';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const port = Number(need('IDP_PORT'));
const issuer = `https://127.0.0.1:${port}`;
const accountsFile = need('IDP_ACCOUNTS');
const clients = JSON.parse(need('IDP_CLIENTS'));

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  async findAccount(_ctx, id) {
    const accounts = JSON.parse(readFileSync(accountsFile, 'utf8'));
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: account.username ?? id,
          name: account.name ?? id,
          email: account.email ?? `${id}@example.test`,
          groups: account.groups ?? [],
        };
      },
    };
  },
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email'], groups: ['groups'] },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  // Claims in the id_token itself (the gateway reads groups from there, on sign-in and refresh).
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
  },
  // A confidential client that may refresh gets a refresh token, offline_access or not.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: { AccessToken: 600, IdToken: 600, DeviceCode: 300, RefreshToken: 3600, Grant: 3600, Session: 3600, Interaction: 600 },
});
provider.on('server_error', (_ctx, err) => console.error('idp server_error', err));

createServer({ key: readFileSync(need('IDP_KEY')), cert: readFileSync(need('IDP_CERT')) }, provider.callback())
  .listen(port, '127.0.0.1', () => console.log(`idp listening on ${issuer} kid=${signingKey.kid}`));
