// A third-party relying party (npm openid-client 6, a certified RP library) logging in at segl.
//
// Run by crates/cli/tests/third_party_clients.rs against a fresh `segl serve`. Two logins:
//   1. a plain authorization request (PKCE S256, state, nonce) → code → tokens → userinfo;
//   2. the same through a pushed authorization request (RFC 9126) with offline_access,
//      then a refresh token grant.
// The browser part is played over segl's flow API with fetch and a hand-kept cookie.
// openid-client checks `iss` in the authorization response (RFC 9207) because discovery
// announces it, and with enableNonRepudiationChecks it verifies the ID token's signature
// against the JWKS.
//
// Environment: SEGL_ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, NIN, PASSWORD,
// HOTP_SECRET_HEX, HOTP_COUNTER (next counter; this script uses it and the one after),
// optionally EXPECTED_SUB and EXPECTED_NAME.
// Prints "openid-client: OK" and exits 0, or "openid-client: FAIL: <reason>" and exits 1.

import { createHmac } from 'node:crypto';
import * as client from 'openid-client';

const ACR_HIGH = 'http://eidas.europa.eu/LoA/high';

class Failure extends Error {}

function check(cond, message) {
  if (!cond) throw new Failure(message);
}

function env(name) {
  const v = process.env[name];
  if (!v) throw new Failure(`environment variable ${name} is not set`);
  return v;
}

/** RFC 4226 HOTP with HMAC-SHA1, written here independently of segl. */
function hotp(secret, counter, digits = 6) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', secret).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const number = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(number % 10 ** digits).padStart(digits, '0');
}

/** Plays the browser over the flow API; returns the redirect back to the client. */
async function driveLogin(authorizeUrl, issuer, nin, code, password) {
  const cookies = new Map();
  const keep = (res) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      cookies.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
  };
  const cookieHeader = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');

  let res = await fetch(authorizeUrl, { redirect: 'manual' });
  keep(res);
  check([302, 303].includes(res.status), `authorize answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const login = new URL(res.headers.get('location'), authorizeUrl);
  check(login.pathname === '/login', `authorize redirected to ${login}, not /login`);
  const flowId = login.searchParams.get('flow');
  check(cookies.has('segl_flow'), 'authorize did not set the segl_flow cookie');

  const api = `${issuer}/api/v1/flows/${flowId}`;
  res = await fetch(api, { headers: { cookie: cookieHeader() } });
  check(res.status === 200, `GET flow: ${res.status}`);
  let view = await res.json();
  check(view.state === 'identify', `a new flow starts at identify: ${JSON.stringify(view)}`);

  const step = async (name, body) => {
    const r = await fetch(`${api}/${name}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': view.csrf_token, cookie: cookieHeader() },
      body: JSON.stringify(body),
    });
    keep(r);
    const text = await r.text();
    check(r.status === 200, `flow step ${name}: ${r.status} ${text.slice(0, 300)}`);
    return JSON.parse(text);
  };

  view = await step('identify', { nin });
  if (view.state === 'choose_method') {
    check(view.methods.includes('otp'), `code device not offered: ${JSON.stringify(view)}`);
    view = await step('method', { method: 'otp' });
  }
  check(view.state === 'otp', `expected the code step: ${JSON.stringify(view)}`);
  view = await step('otp', { otp: code });
  check(view.state === 'password', `expected the password step: ${JSON.stringify(view)}`);
  view = await step('password', { password });
  check(view.state === 'done', `expected done: ${JSON.stringify(view)}`);
  return new URL(view.redirect_to);
}

function checkClaims(claims, nin) {
  check(claims, 'no ID token claims');
  const amr = [...(claims.amr ?? [])].sort();
  check(JSON.stringify(amr) === JSON.stringify(['mfa', 'otp', 'pwd']), `amr: ${JSON.stringify(claims.amr)}`);
  check(claims.acr === ACR_HIGH, `acr: ${claims.acr}`);
  check(claims.sub !== nin, 'sub is the national identity number');
  check(!('nin' in claims), 'nin claim without the nin scope');
  if (process.env.EXPECTED_SUB) check(claims.sub === process.env.EXPECTED_SUB, `sub ${claims.sub}`);
  if (process.env.EXPECTED_NAME) check(claims.name === process.env.EXPECTED_NAME, `name ${claims.name}`);
}

async function main() {
  const issuer = env('SEGL_ISSUER').replace(/\/$/, '');
  const clientId = env('CLIENT_ID');
  const redirectUri = env('REDIRECT_URI');
  const nin = env('NIN');
  const password = env('PASSWORD');
  const secret = Buffer.from(env('HOTP_SECRET_HEX'), 'hex');
  const counter = Number(env('HOTP_COUNTER'));
  check(hotp(Buffer.from('12345678901234567890'), 0) === '755224', "own HOTP fails RFC 4226's vector");

  // Discovery over plain HTTP on loopback needs the library's explicit permission.
  const config = await client.discovery(
    new URL(issuer),
    clientId,
    undefined,
    client.ClientSecretBasic(env('CLIENT_SECRET')),
    { execute: [client.allowInsecureRequests] },
  );
  client.enableNonRepudiationChecks(config);
  check(config.serverMetadata().issuer === issuer, 'discovery issuer');

  // 1. Plain authorization request.
  {
    const codeVerifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid profile',
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      nonce,
      state,
    });
    const callback = await driveLogin(url, issuer, nin, hotp(secret, counter), password);
    const tokens = await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: codeVerifier,
      expectedNonce: nonce,
      expectedState: state,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    checkClaims(claims, nin);
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    if (process.env.EXPECTED_NAME) check(info.name === process.env.EXPECTED_NAME, `userinfo name ${info.name}`);
  }

  // 2. Pushed authorization request with offline_access, then a refresh.
  {
    const codeVerifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const state = client.randomState();
    const url = await client.buildAuthorizationUrlWithPAR(config, {
      redirect_uri: redirectUri,
      scope: 'openid profile offline_access',
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      nonce,
      state,
    });
    check(url.searchParams.has('request_uri'), `PAR gave no request_uri: ${url}`);
    const callback = await driveLogin(url, issuer, nin, hotp(secret, counter + 1), password);
    const tokens = await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: codeVerifier,
      expectedNonce: nonce,
      expectedState: state,
      idTokenExpected: true,
    });
    checkClaims(tokens.claims(), nin);
    check(tokens.refresh_token, 'no refresh token with offline_access');
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    check(refreshed.access_token && refreshed.access_token !== tokens.access_token, 'refresh gave no new access token');
    check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'refresh token did not rotate');
  }

  console.log('openid-client: OK');
}

main().catch((e) => {
  const reason = e instanceof Failure ? e.message : `${e?.name}: ${e?.message}${e?.cause ? ` (cause: ${JSON.stringify(e.cause)})` : ''}`;
  console.log(`openid-client: FAIL: ${reason}`);
  if (!(e instanceof Failure)) console.error(e);
  process.exit(1);
});
