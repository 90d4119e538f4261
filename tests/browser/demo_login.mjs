// A person logs in on segl's demo in a real browser (Debian's Chromium, driven by
// playwright-core): the demo page, "Log in with segl", the national identity number, the
// code device's current code read off the demo page, the password, and back on the demo
// relying party with the verified claims.
//
// Run by crates/cli/tests/browser.rs against `segl serve --demo`.
// Environment: SEGL_BASE_URL (e.g. http://127.0.0.1:PORT), SCREENSHOT_DIR (where a failure
// screenshot goes), CHROMIUM (default /usr/bin/chromium).
// Prints "browser: OK" and exits 0, or "browser: FAIL: <reason>" and exits 1.

import { chromium } from 'playwright-core';

const base = process.env.SEGL_BASE_URL?.replace(/\/$/, '');
const shots = process.env.SCREENSHOT_DIR ?? '/tmp';
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

class Failure extends Error {}
const check = (cond, message) => {
  if (!cond) throw new Failure(message);
};

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

async function main() {
  check(base, 'SEGL_BASE_URL is not set');
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
  const context = await browser.newContext({ locale: 'nb-NO' });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  try {
    // The demo relying party lists its people.
    await page.goto(`${base}/demo`);
    const person = page.locator('tr.demo-person').first();
    await person.waitFor();
    const nin = await person.getAttribute('data-nin');
    const password = await person.getAttribute('data-password');
    const serial = await person.getAttribute('data-serial');
    check(nin && password && serial, 'the demo person row lacks data-nin, data-password or data-serial');
    const rowText = await person.innerText();

    // Log in with segl → the identify page.
    await page.locator('#login').click();
    await page.waitForURL(/\/login\?flow=/);
    const ninField = await field(page, 'nin');
    check((await page.locator('label[for="nin"]').count()) > 0, 'the NIN field has no <label for="nin">');
    await ninField.fill(nin);
    await page.locator('#submit').click();
    await page.waitForLoadState();
    await noError(page, 'the national identity number');

    // Choose the code device if asked.
    const otpMethod = page.locator('button[name="method"][value="otp"]');
    if (await otpMethod.count()) {
      await otpMethod.click();
      await page.waitForLoadState();
    }

    // The code step: read the device's current code off the demo page, fresh.
    await page.locator('#otp').waitFor();
    const demo = await context.newPage();
    await demo.goto(`${base}/demo`);
    const code = (await demo.locator(`code.otp[data-serial="${serial}"]`).first().innerText()).trim();
    await demo.close();
    check(/^\d{6,8}$/.test(code), `the demo page shows no code for device ${serial}: ${JSON.stringify(code)}`);
    await (await field(page, 'otp')).fill(code);
    await page.locator('#submit').click();
    await page.waitForLoadState();
    await noError(page, 'the one-time code');

    // The password.
    await page.locator('#password').waitFor();
    check((await page.locator('#password').getAttribute('type')) === 'password', 'the password field is not type=password');
    await (await field(page, 'password')).fill(password);
    await page.locator('#submit').click();

    // Back at the demo relying party with the verified ID token.
    await page.waitForURL(/\/demo\/callback/);
    const name = (await page.locator('#name').innerText()).trim();
    check(name.length > 0, 'no name on the callback page');
    check(rowText.includes(name), `the name ${JSON.stringify(name)} is not the demo person's (${JSON.stringify(rowText)})`);
    const claims = await page.locator('#claims').innerText();
    check(claims.includes('amr'), `no amr among the claims: ${claims}`);
    check(claims.includes('http://eidas.europa.eu/LoA/high'), `acr is not LoA high: ${claims}`);
    console.log(`browser: OK (${name})`);
  } catch (e) {
    const path = `${shots}/demo-login-failure.png`;
    try {
      await page.screenshot({ path, fullPage: true });
      console.log(`screenshot: ${path}`);
    } catch (shotError) {
      console.log(`no screenshot: ${shotError.message}`);
    }
    console.log(`page: ${page.url()}`);
    throw e;
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.log(`browser: FAIL: ${e instanceof Failure ? e.message : `${e?.name}: ${e?.message}`}`);
  if (!(e instanceof Failure)) console.error(e);
  process.exit(1);
});
