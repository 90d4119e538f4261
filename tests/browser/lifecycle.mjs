// An eID's life in a real browser (Debian's Chromium, driven by playwright-core), with an
// accessibility check (axe-core) of every page it passes:
//
//   1. order: the person fills in /order (national identity number, name, phone, email, the
//      app, codes by SMS and email, the passport's MRZ) and first sends it with a wrong MRZ
//      check digit: the message is tied to the MRZ field (aria-invalid, aria-describedby
//      naming a visible message). With the right MRZ the receipt shows the order number and
//      that the order is approved.
//   2. activation: on /order/activate with the order number, the two codes (which the test
//      reads from the outbox after the order and sends here), a new password and three
//      control questions.
//   3. My page: the operator has given the person a code device; the person logs in to /my
//      with it and the password, and sees the credentials and the history. Before that,
//      in English, they ordered an eID for their child, naming themself as guardian; the
//      same login opens /order/guardian, where they approve it.
//   4. block: on /block, in English, with the code device alone; the confirmation page
//      first without a reason (the message is tied to the choice), then with "lost"; the
//      page says the eID is blocked.
//
// axe-core runs on each page (bokmål by default, English where named) and the script fails
// with a list of every violation of impact serious or critical (rule, impact, element,
// help); moderate and minor ones are printed as notes.
//
// Run by crates/cli/tests/browser_lifecycle.rs against `segl serve`. Environment:
// SEGL_BASE_URL (http://127.0.0.1:PORT), SEGL_NIN, SEGL_NAME, SEGL_PHONE, SEGL_EMAIL (the
// person), SEGL_MRZ and SEGL_BAD_MRZ (their passport's MRZ, right and with a wrong check
// digit), SEGL_PASSWORD (the new password), SEGL_QUESTIONS (JSON [{question, answer}]),
// SEGL_MINOR_NIN, SEGL_MINOR_NAME, SEGL_MINOR_EMAIL, SEGL_MINOR_MRZ (their child),
// SCREENSHOT_DIR (where failure screenshots go), CHROMIUM (default /usr/bin/chromium).
//
// Protocol, one line each; the script asks on stdout and the test answers on stdin:
//   "ORDERED <order number>"  →  "CODES <sms code> <email code>"
//   "MINOR_ORDERED <order number>"   (the child's order; no answer)
//   "ACTIVATED"               →  "DEVICE <serial> <code> <code> ..." (the person's code
//                                 device and its next one-time codes)
// The test may answer "ERROR <message>" instead; then the script stops.
// At the end "browser: OK" (exit 0) or "browser: FAIL: <reason>" (exit 1). Other lines
// ("axe: ...", "axe note: ...", "screenshot: ...") are for whoever reads the output.

import { createInterface } from 'node:readline';
import axe from 'axe-core';
import { chromium } from 'playwright-core';

const base = process.env.SEGL_BASE_URL?.replace(/\/$/, '');
const shots = process.env.SCREENSHOT_DIR ?? '/tmp';
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** How long the test may take to answer a question on stdin. */
const ANSWER_TIMEOUT = 30_000;

class Failure extends Error {}
const check = (cond, message) => {
  if (!cond) throw new Failure(message);
};

function env(name) {
  const v = process.env[name];
  check(v, `${name} is not set`);
  return v;
}

// ---------------------------------------------------------------------------------------
// Talking to the test

const input = createInterface({ input: process.stdin });
const received = [];
const waiting = [];
let inputClosed = false;
input.on('line', (line) => {
  const w = waiting.shift();
  if (w) w(line);
  else received.push(line);
});
input.on('close', () => {
  inputClosed = true;
  for (const w of waiting.splice(0)) w(null);
});

/** Prints `question` and waits for the test's answer, which starts with `word`. */
async function ask(question, word) {
  console.log(question);
  let line;
  if (received.length) {
    line = received.shift();
  } else if (inputClosed) {
    line = null;
  } else {
    let timer;
    line = await Promise.race([
      new Promise((resolve) => waiting.push(resolve)),
      new Promise((resolve) => {
        timer = setTimeout(() => resolve(undefined), ANSWER_TIMEOUT);
      }),
    ]);
    clearTimeout(timer);
  }
  check(line !== undefined, `no answer to "${question}" within ${ANSWER_TIMEOUT / 1000} s`);
  check(line !== null, `stdin closed before the answer to "${question}"`);
  if (line.startsWith('ERROR ')) throw new Failure(`the test could not answer "${question}": ${line.slice(6)}`);
  const [first, ...rest] = line.trim().split(/\s+/);
  check(first === word, `the answer to "${question}" is ${JSON.stringify(line)}, not ${word} ...`);
  return rest;
}

// ---------------------------------------------------------------------------------------
// Accessibility

/** Serious and critical violations on all pages checked so far, one line each. */
const axeProblems = [];
/** The pages checked. */
const axeChecked = [];

/** axe-core's findings on the page as it is now, with the elements as CSS selectors. */
async function runAxe(page) {
  // Evaluated over the DevTools protocol: the pages' Content-Security-Policy forbids inline
  // scripts, and this is not one.
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.evaluate(axe.source);
  }
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    const slim = (v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({
        target: n.target.map((t) => (Array.isArray(t) ? t.join(' >>> ') : t)).join(', '),
        summary: (n.failureSummary ?? '').replace(/\s+/g, ' ').trim(),
      })),
    });
    return {
      lang: document.documentElement.lang,
      violations: r.violations.map(slim),
      incomplete: r.incomplete.map(slim),
      passes: r.passes.length,
    };
  });
}

/**
 * The check itself is checked: on a page made with known faults axe must find them, so a
 * broken injection cannot pass every page unseen.
 */
async function axeFindsKnownFaults(browser) {
  const page = await browser.newPage();
  try {
    await page.setContent(
      '<!doctype html><html lang="en"><head><title>faults</title></head><body><main><h1>Faults</h1>' +
        '<p style="color:#bbb;background:#fff">pale text</p><input id="unlabelled" type="text"></main></body></html>',
    );
    const found = await runAxe(page);
    const ids = found.violations.map((v) => `${v.id}/${v.impact}`).sort();
    check(
      ids.includes('color-contrast/serious') && ids.includes('label/critical'),
      `axe did not find the known faults of the test page: ${JSON.stringify(ids)}`,
    );
  } finally {
    await page.close();
  }
}

/**
 * Runs axe-core on the page as it is now. Serious and critical violations are collected
 * (the script fails with all of them at the end); the others are printed as notes.
 */
async function a11y(page, what) {
  const found = await runAxe(page);
  const where = `${what} (${new URL(page.url()).pathname}, lang=${found.lang})`;
  axeChecked.push(where);
  check(found.passes > 0, `axe passed no rule on ${where}: did it run?`);
  // What axe could not decide (e.g. contrast over an image) is for a person to look at.
  for (const v of found.incomplete) {
    console.log(`axe note: ${where}: needs review: ${v.id} [${v.impact}] ${v.help}: ${v.nodes.map((n) => n.target).join('; ')}`);
  }
  let serious = 0;
  for (const v of found.violations) {
    const targets = v.nodes.map((n) => n.target).join('; ');
    if (v.impact === 'serious' || v.impact === 'critical') {
      serious += 1;
      const detail = v.nodes.map((n) => `      ${n.target}: ${n.summary}`).join('\n');
      axeProblems.push(`${where}: ${v.id} [${v.impact}] ${v.help} (${v.helpUrl})\n${detail}`);
    } else {
      console.log(`axe note: ${where}: ${v.id} [${v.impact}] ${v.help}: ${targets}`);
    }
  }
  console.log(`axe: ${where}: ${found.violations.length} violation(s), ${serious} serious or critical`);
}

// ---------------------------------------------------------------------------------------
// Pages

/** The field with this id, found by its label as a person would where it has one. */
async function field(page, id) {
  const label = page.locator(`label[for="${id}"]`);
  check((await label.count()) > 0, `the field #${id} on ${page.url()} has no <label for="${id}">`);
  const text = (await label.first().innerText()).trim();
  const byLabel = page.getByLabel(text, { exact: true });
  if ((await byLabel.count()) === 1) return byLabel;
  return page.locator(`#${id}`);
}

/** Sends the page's form with its submit button and waits for the next page. */
async function submit(page, selector = '#submit') {
  await page.locator(selector).click();
  await page.waitForLoadState();
}

/** Fails with the page's error text if it shows one. */
async function noError(page, after) {
  for (const sel of ['#error.error', '#error-summary']) {
    const err = page.locator(sel);
    if (await err.count()) {
      const text = (await err.first().innerText()).trim();
      if (text) throw new Failure(`after ${after} the page shows an error: ${text}`);
    }
  }
}

/**
 * Checks that `control`'s problem is told where it is: aria-invalid (unless it is a group),
 * and an aria-describedby naming a visible element with the message. Returns the message.
 */
async function errorTiedTo(page, control, { group = false } = {}) {
  const el = page.locator(control);
  check((await el.count()) === 1, `no ${control} on ${page.url()}`);
  if (!group) {
    check((await el.getAttribute('aria-invalid')) === 'true', `${control} is not aria-invalid="true"`);
  }
  const ids = ((await el.getAttribute('aria-describedby')) ?? '').split(/\s+/).filter(Boolean);
  const messages = [];
  for (const id of ids) {
    const d = page.locator(`[id="${id}"]`);
    check((await d.count()) === 1, `${control}'s aria-describedby names #${id}, which is not on the page once`);
    if ((await d.getAttribute('class'))?.split(/\s+/).includes('error')) {
      check(await d.isVisible(), `the message #${id} for ${control} is not visible`);
      messages.push((await d.innerText()).trim());
    }
  }
  check(
    messages.length === 1 && messages[0],
    `${control}'s aria-describedby (${JSON.stringify(ids)}) names no visible error message`,
  );
  return messages[0];
}

const launchArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

/** Runs `body` with a page in a fresh context; on failure saves a screenshot. */
async function scenario(browser, what, locale, body) {
  const context = await browser.newContext({ locale });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  const scriptErrors = [];
  page.on('pageerror', (e) => scriptErrors.push(e.message));
  try {
    await body(page);
    check(scriptErrors.length === 0, `script errors on the pages: ${scriptErrors.join('; ')}`);
  } catch (e) {
    const path = `${shots}/lifecycle-${what}-failure.png`;
    try {
      await page.screenshot({ path, fullPage: true });
      console.log(`screenshot: ${path}`);
    } catch (shotError) {
      console.log(`no screenshot: ${shotError.message}`);
    }
    console.log(`${what}: page ${page.url()}`);
    e.message = `${what}: ${e.message}`;
    throw e;
  } finally {
    await context.close();
  }
}

// ---------------------------------------------------------------------------------------
// The steps

const person = {};
/** The person's child, whose order they approve as guardian. */
const minor = {};

/** /order, first with a wrong MRZ check digit, then right; then /order/activate. */
async function order(page) {
  await page.goto(`${base}/order`);
  await page.locator('#nin').waitFor();
  await a11y(page, 'order form');

  await (await field(page, 'nin')).fill(person.nin);
  await (await field(page, 'name')).fill(person.name);
  await (await field(page, 'phone')).fill(person.phone);
  await (await field(page, 'email')).fill(person.email);
  await (await field(page, 'kind-app')).check();
  await (await field(page, 'delivery-sms-email')).check();
  await (await field(page, 'evidence-mrz')).check();
  await (await field(page, 'mrz')).fill(person.badMrz);
  await submit(page);

  // The wrong check digit: the message sits at the MRZ field, and what was typed stays.
  const message = await errorTiedTo(page, '#mrz');
  console.log(`order: a wrong MRZ check digit says "${message}"`);
  const summary = page.locator('#error-summary a');
  check((await summary.count()) === 1, 'no error summary above the form');
  check((await summary.getAttribute('href')) === '#mrz', `the error summary links to ${await summary.getAttribute('href')}`);
  const invalid = await page.locator('[aria-invalid="true"]').evaluateAll((els) => els.map((e) => e.id));
  check(JSON.stringify(invalid) === '["mrz"]', `fields marked invalid: ${JSON.stringify(invalid)}, not just the MRZ`);
  check((await page.locator('#name').inputValue()) === person.name, 'the name was not kept');
  check((await page.locator('#nin').inputValue()) === person.nin, 'the national identity number was not kept');
  check(await page.locator('#kind-app').isChecked(), 'the choice of the app was not kept');
  await a11y(page, 'order form with an error');

  await (await field(page, 'mrz')).fill(person.mrz);
  await submit(page);
  await noError(page, 'the order with the right MRZ');
  const numberEl = page.locator('#order-number');
  await numberEl.waitFor();
  const shownNumber = (await numberEl.innerText()).trim();
  const number = shownNumber.replace(/\s/g, '');
  check(/^\d{12}$/.test(number), `the receipt shows the order number ${JSON.stringify(shownNumber)}`);
  const state = page.locator('#order-state');
  check((await state.getAttribute('data-state')) === 'approved', `the order is ${await state.getAttribute('data-state')}, not approved`);
  const stateText = (await state.innerText()).trim();
  check(stateText.length > 0, 'the receipt does not say what happens to the order');
  console.log(`order: number ${shownNumber}, "${stateText}"`);
  await a11y(page, 'order receipt');
  const [sms, email] = await ask(`ORDERED ${number}`, 'CODES');
  check(sms && email, 'the test sent no codes');

  // Activation, from the receipt's link, with the number as the receipt shows it.
  await page.locator('a[href="/order/activate"]').first().click();
  await page.waitForURL(/\/order\/activate$/);
  await page.locator('#number').waitFor();
  await a11y(page, 'activation form');
  await (await field(page, 'number')).fill(shownNumber);
  await (await field(page, 'code')).fill(sms);
  await (await field(page, 'second_code')).fill(email);
  await (await field(page, 'password')).fill(person.password);
  await (await field(page, 'password2')).fill(person.password);
  for (const [i, qa] of person.questions.entries()) {
    await (await field(page, `q${i}`)).fill(qa.question);
    await (await field(page, `a${i}`)).fill(qa.answer);
  }
  await submit(page);
  await noError(page, 'the activation');
  const result = page.locator('#activation-result');
  await result.waitFor();
  const appCode = (await result.innerText()).trim();
  check(/^[A-Z0-9]{4}(-[A-Z0-9]{4}){3}$/.test(appCode), `the activation shows ${JSON.stringify(appCode)}, not the app's code`);
  console.log(`activation: done, the app's activation code is shown`);
  await a11y(page, 'activation done');
}

/**
 * The English order form, empty and with an error; then the person orders for their child
 * and names themself as guardian: the receipt says the order waits for the guardian.
 */
async function orderInEnglish(page) {
  await page.goto(`${base}/order`);
  await page.locator('#nin').waitFor();
  const lang = await page.evaluate(() => document.documentElement.lang);
  check(lang === 'en', `with an English Accept-Language /order is in ${lang}`);
  await a11y(page, 'order form');
  await submit(page);
  const message = await errorTiedTo(page, '#nin');
  console.log(`order (en): an empty form says "${message}"`);
  await a11y(page, 'order form with an error');

  await (await field(page, 'nin')).fill(minor.nin);
  await (await field(page, 'name')).fill(minor.name);
  await (await field(page, 'phone')).fill(person.phone);
  await (await field(page, 'email')).fill(minor.email);
  await (await field(page, 'guardian_nin')).fill(person.nin);
  await (await field(page, 'mrz')).fill(minor.mrz);
  await submit(page);
  await noError(page, "the child's order");
  const numberEl = page.locator('#order-number');
  await numberEl.waitFor();
  minor.number = (await numberEl.innerText()).trim();
  const state = await page.locator('#order-state').getAttribute('data-state');
  check(state === 'awaiting_guardian', `the child's order is ${state}, not awaiting_guardian`);
  console.log(`order (en): the child's order ${minor.number} waits for the guardian`);
  console.log(`MINOR_ORDERED ${minor.number.replace(/\s/g, '')}`);
  await a11y(page, 'order receipt, awaiting the guardian');
}

/** The guardian's page, logged in from My page: the child's order, approved. */
async function guardian(page) {
  await page.goto(`${base}/order/guardian`);
  check(new URL(page.url()).pathname === '/order/guardian', `/order/guardian went to ${page.url()}`);
  const section = page.locator('section.order');
  check((await section.count()) === 1, `the guardian's page lists ${await section.count()} orders, not the child's one`);
  const name = (await section.locator('h2').innerText()).trim();
  check(name === minor.name, `the guardian's page shows the order of ${JSON.stringify(name)}`);
  const number = (await section.locator('.order-number').innerText()).trim();
  check(number === minor.number, `the guardian's page shows order ${number}, not ${minor.number}`);
  await a11y(page, "guardian's page");
  await section.locator('button[name="decision"][value="approve"]').click();
  await page.waitForLoadState();
  const notice = page.locator('[role="status"]');
  await notice.first().waitFor();
  console.log(`guardian: "${(await notice.first().innerText()).trim()}"`);
  check((await page.locator('#no-orders').count()) === 1, 'the approved order is still listed');
  await a11y(page, "guardian's page after approving");
}

/**
 * A login on the ordinary login pages with the code device (and the password if asked),
 * starting on the identify page; `label` names the pages for axe.
 */
async function loginWithCodeDevice(page, label, { password }) {
  await page.waitForURL(/\/login\?flow=/);
  await page.locator('#nin').waitFor();
  await a11y(page, `${label}: identify`);
  await (await field(page, 'nin')).fill(person.nin);
  await submit(page);
  await noError(page, 'the national identity number');

  const otpMethod = page.locator('button[name="method"][value="otp"]');
  if ((await page.locator('#otp').count()) === 0 && (await otpMethod.count())) {
    await a11y(page, `${label}: choose method`);
    await otpMethod.click();
    await page.waitForLoadState();
  }
  await page.locator('#otp').waitFor();
  await a11y(page, `${label}: one-time code`);
  const code = person.codes.shift();
  check(code, 'no more one-time codes from the test');
  await (await field(page, 'otp')).fill(code);
  await submit(page);
  await noError(page, 'the one-time code');

  if (password) {
    await page.locator('#password').waitFor();
    await a11y(page, `${label}: password`);
    check((await page.locator('#password').getAttribute('type')) === 'password', 'the password field is not type=password');
    await (await field(page, 'password')).fill(person.password);
    await submit(page);
    await noError(page, 'the password');
  }
}

/** My page: the login, the credentials, the history; in bokmål and English. */
async function myPage(page) {
  await page.goto(`${base}/my`);
  await loginWithCodeDevice(page, 'My page login', { password: true });
  await page.waitForURL((u) => u.pathname === '/my');
  const name = (await page.locator('#person-name').innerText()).trim();
  check(name === person.name, `My page names ${JSON.stringify(name)}`);
  const h1 = (await page.locator('h1').innerText()).trim();
  check(h1 === 'Min side', `My page's heading is ${JSON.stringify(h1)}`);
  // The credentials: the code device, the password, the certificate.
  const devices = await page.locator('#devices tbody th').allInnerTexts();
  check(devices.map((s) => s.trim()).includes(person.serial), `the code devices listed are ${JSON.stringify(devices)}, not ${person.serial}`);
  check(await page.locator('#password-changed').isVisible(), 'My page does not say when the password was changed');
  const certs = await page.locator('#certs tbody tr').count();
  check(certs >= 1, 'My page lists no certificate');
  // The history: at least the order's activation or this login.
  const history = await page.locator('#history tbody tr').allInnerTexts();
  check(history.length >= 1, 'My page shows no history');
  console.log(`My page: ${devices.length} code device(s), ${certs} certificate(s), ${history.length} history entries; newest: ${history[0].replace(/\s+/g, ' ')}`);
  await a11y(page, 'My page');

  // The same login opens the guardian's page.
  await guardian(page);

  await page.goto(`${base}/my?lang=en`);
  const lang = await page.evaluate(() => document.documentElement.lang);
  check(lang === 'en', `/my?lang=en is in ${lang}`);
  check((await page.locator('#person-name').innerText()).trim() === person.name, 'English My page names someone else');
  await a11y(page, 'My page');
}

/** /block in English with the code device alone, first without a reason. */
async function block(page) {
  await page.goto(`${base}/block`);
  await loginWithCodeDevice(page, 'block login', { password: false });
  await page.waitForURL(/\/block\/[^/?#]+$/);
  const lang = await page.evaluate(() => document.documentElement.lang);
  check(lang === 'en', `with an English Accept-Language the block page is in ${lang}`);
  const name = (await page.locator('#person-name').innerText()).trim();
  check(name === person.name, `the block page names ${JSON.stringify(name)}`);
  await a11y(page, 'block confirmation');

  // No reason chosen: the message belongs to the group of reasons.
  await submit(page);
  const group = page.locator('fieldset:has(input[name="reason"])');
  await group.waitFor();
  const message = await errorTiedTo(page, 'fieldset:has(input[name="reason"])', { group: true });
  console.log(`block: without a reason the page says "${message}"`);
  await a11y(page, 'block confirmation without a reason');

  await (await field(page, 'reason-lost')).check();
  await submit(page);
  const heading = (await page.locator('h1').innerText()).trim();
  const text = (await page.locator('main h1 + p').innerText()).trim();
  check(/\bblocked\b/i.test(heading), `after the block the page's heading is ${JSON.stringify(heading)}`);
  console.log(`block: "${heading}: ${text}"`);
  await a11y(page, 'block done');
}

async function main() {
  check(base, 'SEGL_BASE_URL is not set');
  Object.assign(person, {
    nin: env('SEGL_NIN'),
    name: env('SEGL_NAME'),
    phone: env('SEGL_PHONE'),
    email: env('SEGL_EMAIL'),
    mrz: env('SEGL_MRZ'),
    badMrz: env('SEGL_BAD_MRZ'),
    password: env('SEGL_PASSWORD'),
    questions: JSON.parse(env('SEGL_QUESTIONS')),
  });
  check(person.questions.length === 3, 'SEGL_QUESTIONS holds not three questions');
  Object.assign(minor, {
    nin: env('SEGL_MINOR_NIN'),
    name: env('SEGL_MINOR_NAME'),
    email: env('SEGL_MINOR_EMAIL'),
    mrz: env('SEGL_MINOR_MRZ'),
  });
  const browser = await chromium.launch({ executablePath, headless: true, args: launchArgs });
  try {
    await axeFindsKnownFaults(browser);
    await scenario(browser, 'order', 'nb-NO', order);
    await scenario(browser, 'order-en', 'en-GB', orderInEnglish);
    const [serial, ...codes] = await ask('ACTIVATED', 'DEVICE');
    check(serial && codes.length >= 2, 'the test sent no code device');
    Object.assign(person, { serial, codes });
    await scenario(browser, 'my-page', 'nb-NO', myPage);
    await scenario(browser, 'block', 'en-GB', block);
  } finally {
    await browser.close();
  }
  console.log(`axe: ${axeChecked.length} pages checked`);
  check(
    axeProblems.length === 0,
    `axe found ${axeProblems.length} serious or critical violation(s):\n${axeProblems.map((p) => `  - ${p}`).join('\n')}`,
  );
  console.log('browser: OK');
}

main().then(
  () => process.exit(0),
  (e) => {
    console.log(`browser: FAIL: ${e instanceof Failure ? e.message : `${e?.name}: ${e?.message}`}`);
    if (!(e instanceof Failure)) console.error(e);
    process.exit(1);
  },
);
