// The peer of segl's refresh-token benchmark: panva's oidc-provider (the certified
// reference OP) with one confidential client, configured like segl for this grant:
// client_secret_basic, refresh tokens rotated on every use, ES256 ID tokens.
//
//   node peer.mjs --tokens FILE [--count N] [--client-secret S]
//
// Listens on 127.0.0.1 (a free port), creates N grants with one refresh token each
// server-side (the same objects the authorization_code grant would create), writes the
// refresh token values to FILE (one per line), then prints
// `peer listening on http://127.0.0.1:PORT` and serves until SIGTERM/SIGINT.
//
// Storage is oidc-provider's default in-memory adapter: nothing is written to disk, unlike
// segl, whose every grant is a committed database transaction.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    tokens: { type: 'string' },
    count: { type: 'string', default: '32' },
    'client-id': { type: 'string', default: 'bench-peer' },
    'client-secret': { type: 'string', default: randomBytes(24).toString('base64url') },
    'redirect-uri': { type: 'string', default: 'http://127.0.0.1:9/cb' },
  },
});
if (!args.tokens) {
  console.error('error: --tokens FILE is required');
  process.exit(2);
}
const count = Number.parseInt(args.count, 10);
if (!(count > 0 && count <= 100000)) {
  console.error('error: --count must be between 1 and 100000');
  process.exit(2);
}

const server = http.createServer();
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'bench-es256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: args['client-id'],
    client_secret: args['client-secret'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [args['redirect-uri']],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access'],
  claims: { openid: ['sub'] },
  rotateRefreshToken: true,
  findAccount: async (ctx, accountId) => ({
    accountId,
    claims: async () => ({ sub: accountId }),
  }),
  features: { devInteractions: { enabled: false } },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    IdToken: 300,
    Grant: 30 * 24 * 3600,
    RefreshToken: 30 * 24 * 3600,
    Session: 8 * 3600,
    Interaction: 600,
  },
});
server.on('request', provider.callback());

const client = await provider.Client.find(args['client-id']);
const now = Math.floor(Date.now() / 1000);
const values = [];
for (let i = 0; i < count; i += 1) {
  const accountId = `bench-${i}`;
  const grant = new provider.Grant({ accountId, clientId: client.clientId });
  grant.addOIDCScope('openid offline_access');
  const grantId = await grant.save();
  const rt = new provider.RefreshToken({
    client,
    accountId,
    grantId,
    gty: 'authorization_code',
    scope: 'openid offline_access',
    authTime: now,
    acr: 'http://eidas.europa.eu/LoA/high',
    amr: ['otp', 'pwd', 'mfa'],
    expiresWithSession: false,
  });
  values.push(await rt.save());
}
writeFileSync(args.tokens, `${values.join('\n')}\n`);

const stop = () => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
console.log(`peer client ${args['client-id']} ${args['client-secret']}`);
console.log(`peer listening on ${issuer}`);
