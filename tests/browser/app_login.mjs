// Login with the app in a real browser (Debian's Chromium, driven by playwright-core): on
// segl's demo a person starts a login, gives their national identity number, chooses the
// app, and waits on the "Open the app" page while the reference app (`segl app approve` /
// `segl app deny`, run by the Rust test) answers. The page's own script must move on by
// itself: no reload, no click by the test.
//
// Two logins, each in a fresh browser context:
//   1. approve: the page goes straight to the demo relying party, which shows the verified
//      ID token's claims (amr with swk and pin);
//   2. deny, on a slow link (each refreshed QR image takes 1.3 s): the QR code still
//      changes; the page shows that the login was stopped, with a link back to the
//      relying party, which then reports access_denied.
//
// Run by crates/cli/tests/browser.rs against `segl serve --demo` with a person who has an
// active app. Environment: SEGL_BASE_URL (http://127.0.0.1:PORT), SEGL_APP_NIN and
// SEGL_APP_NAME (the person), SCREENSHOT_DIR (where failure screenshots go), CHROMIUM
// (default /usr/bin/chromium).
//
// Protocol on stdout, one line each:
//   "VERIFICATION <approve|deny> <code>"  the page waits for the app: answer now (the code
//                                          is the verification code the page shows);
//   "ID_TOKEN <jwt>"                      the ID token the demo relying party received;
//   "browser: OK" (exit 0) or "browser: FAIL: <reason>" (exit 1) at the end.
// Other lines are notes for whoever reads a failure.

import { chromium } from 'playwright-core';

const base = process.env.SEGL_BASE_URL?.replace(/\/$/, '');
const nin = process.env.SEGL_APP_NIN;
const name = process.env.SEGL_APP_NAME;
const shots = process.env.SCREENSHOT_DIR ?? '/tmp';
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** How long the page may wait for the app's answer to arrive and be acted on. */
const ANSWER_TIMEOUT = 30_000;

class Failure extends Error {}
const check = (cond, message) => {
  if (!cond) throw new Failure(message);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Fails with the page's error text if it shows one. */
async function noError(page, after) {
  const err = page.locator('#error');
  if (await err.count()) {
    const text = (await err.first().innerText()).trim();
    if (text) throw new Failure(`after ${after} the page shows an error: ${text}`);
  }
}

/** The field with this id, found by its label as a person would where it has one. */
async function field(page, id) {
  const label = page.locator(`label[for="${id}"]`);
  if (await label.count()) {
    const text = (await label.first().innerText()).trim();
    const byLabel = page.getByLabel(text, { exact: true });
    if ((await byLabel.count()) === 1) return byLabel;
  }
  return page.locator(`#${id}`);
}

/** What a page did: its main-frame navigations, QR images, collect calls and errors. */
function watch(page) {
  const seen = { navigations: [], qr: [], collects: [], events: 0, pageErrors: [], csp: [] };
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) seen.navigations.push(frame.url());
  });
  page.on('pageerror', (e) => seen.pageErrors.push(e.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) seen.csp.push(msg.text());
  });
  page.on('request', (req) => {
    if (/\/api\/v1\/flows\/[^/]+\/events$/.test(new URL(req.url()).pathname)) seen.events += 1;
  });
  // Recorded at once (a check may run right after the navigation the response caused);
  // the body is added when it has been read, and stays null if the page went first.
  page.on('response', async (resp) => {
    const url = new URL(resp.url());
    let record;
    if (/\/api\/v1\/flows\/[^/]+\/qr$/.test(url.pathname)) {
      record = { at: Date.now(), status: resp.status(), type: resp.headers()['content-type'] ?? '', body: null };
      seen.qr.push(record);
    } else if (/\/api\/v1\/flows\/[^/]+\/app$/.test(url.pathname) && resp.request().method() === 'POST') {
      record = { status: resp.status(), body: null };
      seen.collects.push(record);
    } else {
      return;
    }
    try {
      record.body = seen.qr.includes(record) ? await resp.text() : await resp.json();
    } catch {
      // The page navigated away before the body could be read.
    }
  });
  return seen;
}

/**
 * From the demo page to the "Open the app" page; returns the verification code. With
 * `slowQr`, every refreshed QR image takes longer than the page's one-second refresh to
 * arrive (a slow mobile link): it must still change.
 */
async function startAppLogin(page, seen, { slowQr = false } = {}) {
  if (slowQr) {
    await page.route('**/api/v1/flows/*/qr?t=*', async (route) => {
      await sleep(1_300);
      await route.continue().catch(() => {});
    });
  }
  await page.goto(`${base}/demo`);
  await page.locator('#login').click();
  await page.waitForURL(/\/login\?flow=/);
  check((await page.locator('label[for="nin"]').count()) > 0, 'the NIN field has no <label for="nin">');
  await (await field(page, 'nin')).fill(nin);
  await page.locator('#submit').click();

  // Both methods are offered; the person picks the app.
  const app = page.locator('#method-app');
  await app.waitFor();
  await noError(page, 'the national identity number');
  check(
    (await page.locator('button[name="method"][value="otp"]').count()) === 1,
    'the method choice does not offer the code device',
  );
  check((await app.getAttribute('value')) === 'app', `#method-app has value ${await app.getAttribute('value')}`);
  await app.click();

  // The "Open the app" page: the verification code, the status line, the QR code.
  const vc = page.locator('#verification-code');
  await vc.waitFor();
  await noError(page, 'choosing the app');
  const code = (await vc.innerText()).trim();
  check(/^\S+ \S+$/.test(code), `the verification code is not two words: ${JSON.stringify(code)}`);
  const status = (await page.locator('#app-status').innerText()).trim();
  check(status.length > 0, 'the page shows no status while waiting for the app');

  // The QR code is animated: the script reloads it every second and it changes.
  const qr = page.locator('#qr');
  const firstSrc = await qr.getAttribute('src');
  const deadline = Date.now() + 8_000;
  const distinct = () => new Set(seen.qr.filter((q) => q.status === 200 && q.body).map((q) => q.body)).size;
  const settled = () => seen.qr.length > 0 && distinct() >= 2 && Date.now() - seen.qr[0].at >= 2_000;
  while (Date.now() < deadline && !settled()) {
    await sleep(100);
  }
  const laterSrc = await qr.getAttribute('src');
  check(laterSrc !== firstSrc, `the QR image was not refreshed: src stayed ${firstSrc}`);
  const bad = seen.qr.filter((q) => q.status !== 200 || !q.type.startsWith('image/svg+xml'));
  check(bad.length === 0, `QR images failed: ${JSON.stringify(bad.map(({ status, type }) => ({ status, type })))}`);
  check(
    distinct() >= 2,
    `the QR code did not change over ~2 s (${seen.qr.length} loads, ${distinct()} distinct)`,
  );
  // Displayed (between two loads the element may be waiting for the next one).
  const shown = await page
    .waitForFunction(
      () => {
        const img = document.getElementById('qr');
        return img.complete && img.naturalWidth > 0;
      },
      null,
      { timeout: 5_000, polling: 50 },
    )
    .then(() => true, () => false);
  check(shown, 'the QR image is not displayed');
  console.log(`QR: ${seen.qr.length} loads, ${distinct()} distinct images`);
  check(seen.events > 0, 'the page did not open the server-sent events');
  check(seen.pageErrors.length === 0, `script errors on the page: ${seen.pageErrors.join('; ')}`);
  return code;
}

/** A new browser context with one page and its watcher. */
async function open(browser) {
  const context = await browser.newContext({ locale: 'nb-NO' });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  return { context, page, seen: watch(page) };
}

/** Runs `body` with the page; on failure saves a screenshot and notes what the page did. */
async function scenario(browser, what, body) {
  const { context, page, seen } = await open(browser);
  try {
    await body(page, seen);
  } catch (e) {
    const path = `${shots}/app-login-${what}-failure.png`;
    try {
      await page.screenshot({ path, fullPage: true });
      console.log(`screenshot: ${path}`);
    } catch (shotError) {
      console.log(`no screenshot: ${shotError.message}`);
    }
    console.log(`${what}: page ${page.url()}`);
    console.log(`${what}: navigations ${JSON.stringify(seen.navigations)}`);
    console.log(`${what}: collects ${JSON.stringify(seen.collects)}`);
    console.log(`${what}: QR loads ${seen.qr.length}, event streams ${seen.events}`);
    if (seen.pageErrors.length) console.log(`${what}: script errors ${JSON.stringify(seen.pageErrors)}`);
    if (seen.csp.length) console.log(`${what}: CSP ${JSON.stringify(seen.csp)}`);
    e.message = `${what}: ${e.message}`;
    throw e;
  } finally {
    await context.close();
  }
}

/** Yes, it's me: the page goes on to the relying party by itself. */
async function approve(page, seen) {
  const code = await startAppLogin(page, seen);
  const waitingAt = page.url();
  const before = seen.navigations.length;
  console.log(`VERIFICATION approve ${code}`);

  await page.waitForURL(/\/demo\/callback/, { timeout: ANSWER_TIMEOUT });
  const moves = seen.navigations.slice(before);
  console.log(`approve: navigations after waiting ${JSON.stringify(moves)}`);
  // The only navigation is to the relying party: no reload of the login page.
  check(
    moves.length === 1 && new URL(moves[0]).pathname === '/demo/callback',
    `from ${waitingAt} the page went ${JSON.stringify(moves)}, not straight to the relying party`,
  );
  const cb = new URL(moves[0]);
  check(cb.searchParams.get('code') && !cb.searchParams.get('error'), `the callback carries no code: ${moves[0]}`);
  check(cb.searchParams.get('iss') === base, `the callback's iss is ${cb.searchParams.get('iss')}`);
  // The page's script collected the answer (its body may be gone with the navigation).
  check(
    seen.collects.some((c) => c.status === 200 && (c.body === null || c.body.state === 'done')),
    `no collect call ended the login: ${JSON.stringify(seen.collects)}`,
  );

  // The demo relying party verified the ID token and shows its claims.
  await noError(page, 'the approval');
  const shownName = (await page.locator('#name').innerText()).trim();
  check(shownName === name, `the relying party shows ${JSON.stringify(shownName)}, not ${JSON.stringify(name)}`);
  const claims = JSON.parse(await page.locator('#claims').innerText());
  check(Array.isArray(claims.amr), `no amr among the claims: ${JSON.stringify(claims)}`);
  for (const m of ['swk', 'pin']) {
    check(claims.amr.includes(m), `amr ${JSON.stringify(claims.amr)} lacks ${m}`);
  }
  check(!claims.amr.includes('pwd') && !claims.amr.includes('otp'), `amr ${JSON.stringify(claims.amr)}: app only`);
  check(claims.acr === 'http://eidas.europa.eu/LoA/substantial', `acr is ${claims.acr}, not substantial`);
  const idToken = await page.locator('input[name="id_token_hint"]').getAttribute('value');
  check(idToken && idToken.split('.').length === 3, 'the result page holds no ID token');
  console.log(`approve: amr ${JSON.stringify(claims.amr)}, acr ${claims.acr}`);
  console.log(`ID_TOKEN ${idToken}`);
  check(seen.pageErrors.length === 0, `script errors on the page: ${seen.pageErrors.join('; ')}`);
  check(seen.csp.length === 0, `CSP violations: ${seen.csp.join('; ')}`);
}

/** No, that's not me: the page shows that the login was stopped, and the RP hears no. */
async function deny(page, seen) {
  const code = await startAppLogin(page, seen, { slowQr: true });
  const waitingAt = page.url();
  const before = seen.navigations.length;
  console.log(`VERIFICATION deny ${code}`);

  // The page leaves the waiting state by itself (it reloads nothing while waiting).
  const cont = page.locator('#continue');
  await cont.waitFor({ timeout: ANSWER_TIMEOUT });
  const moves = seen.navigations.slice(before);
  console.log(`deny: navigations after waiting ${JSON.stringify(moves)}`);
  check(
    moves.length === 1 && new URL(moves[0]).pathname === '/login',
    `from ${waitingAt} the page went ${JSON.stringify(moves)}, not once to the login's end`,
  );
  check(
    seen.collects.some((c) => c.status === 403 && (c.body === null || c.body.code === 'denied_in_app')),
    `no collect call saw the refusal: ${JSON.stringify(seen.collects)}`,
  );

  // What the person sees: the login was stopped, and a way back to the service.
  check((await page.locator('#verification-code').count()) === 0, 'the verification code is still shown');
  check((await page.locator('#qr').count()) === 0, 'the QR code is still shown');
  const heading = (await page.locator('h2').first().innerText()).trim();
  check(heading === 'Innloggingen ble avbrutt', `the page says ${JSON.stringify(heading)}, not that the login was stopped`);
  const err = page.locator('#error');
  const errText = (await err.count()) ? (await err.first().innerText()).trim() : '';
  console.log(`deny: the page shows "${heading}"${errText ? ` / "${errText}"` : ' (no reason given)'}`);
  check(!errText || /avvist i appen/.test(errText), `the page shows another error: ${errText}`);
  const contText = (await cont.innerText()).trim();
  check(contText === 'Fortsett til segl demo', `the link back says ${JSON.stringify(contText)}`);
  const href = new URL(await cont.getAttribute('href'), base);
  check(href.pathname === '/demo/callback', `the link back goes to ${href}`);
  check(href.searchParams.get('error') === 'access_denied', `the link back carries no access_denied: ${href}`);
  check(!href.searchParams.get('code'), `the link back carries a code: ${href}`);

  // The person follows it: the relying party reports the refusal, and no claims.
  await cont.click();
  await page.waitForURL(/\/demo\/callback/);
  const rpError = (await page.locator('#error').innerText()).trim();
  check(/access_denied/.test(rpError), `the relying party says ${JSON.stringify(rpError)}`);
  check((await page.locator('#claims').count()) === 0, 'the relying party shows claims after a refusal');
  console.log(`deny: the relying party says "${rpError}"`);
  check(seen.pageErrors.length === 0, `script errors on the page: ${seen.pageErrors.join('; ')}`);
  check(seen.csp.length === 0, `CSP violations: ${seen.csp.join('; ')}`);
}

async function main() {
  check(base, 'SEGL_BASE_URL is not set');
  check(nin && name, 'SEGL_APP_NIN or SEGL_APP_NAME is not set');
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
  try {
    await scenario(browser, 'approve', approve);
    await scenario(browser, 'deny', deny);
    console.log('browser: OK');
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.log(`browser: FAIL: ${e instanceof Failure ? e.message : `${e?.name}: ${e?.message}`}`);
  if (!(e instanceof Failure)) console.error(e);
  process.exit(1);
});
