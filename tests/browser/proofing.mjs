// Real-name proofing and the legal-person entry in headless Chromium (run by tests/it/proofing.rs):
// a citizen signs in through the 法人登录 entry, lands on her enterprises, raises her level 1 → 2 → 3
// (the face step through the provider's page on the authorities' test double and back), binds her
// company, and each page is checked for its language and autocomplete attributes.
//
//   YUNID_URL          yunid's issuer
//   PERSON_ID_NUMBER, PERSON_PASSWORD
//   COMPANY            a credit code the registry double names her legal representative of
//   PROVIDER_ORIGIN    the origin of the face provider's page (the double)
//   SCREENSHOT_DIR     where zh-CN/<page>.png go
//   CHROMIUM           the browser (default /usr/bin/chromium)

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`proofing.mjs: environment variable ${name} is not set`);
    process.exit(2);
  }
  return value.replace(/\/+$/, '');
}

const YUNID = need('YUNID_URL');
const ID = need('PERSON_ID_NUMBER');
const PASSWORD = need('PERSON_PASSWORD');
const COMPANY = need('COMPANY');
const PROVIDER = need('PROVIDER_ORIGIN');
const SHOTS = need('SCREENSHOT_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

class Failure extends Error {}
function check(condition, message) {
  if (!condition) throw new Failure(message);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-gpu', '--no-proxy-server', '--disable-dev-shm-usage', '--no-first-run'],
});
const context = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1024, height: 768 } });
context.setDefaultTimeout(15_000);
const page = await context.newPage();
const visited = [];
// The provider's page only redirects back, so it never commits: its request is what shows the visit.
page.on('request', (r) => {
  if (r.isNavigationRequest()) visited.push(r.url());
});
const violations = [];
page.on('console', (m) => {
  if (m.text().includes('Content Security Policy')) violations.push(m.text());
});

async function shot(name) {
  const dir = path.join(SHOTS, 'zh-CN');
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
}

async function text() {
  return page.locator('body').innerText();
}

try {
  // The 法人登录 entry on the login page.
  await page.goto(`${YUNID}/login`);
  await page.click('#legal-entry');
  await page.fill('#username', ID);
  await page.fill('#password', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL((u) => u.pathname === '/account/organisations');
  check((await page.locator('html').getAttribute('lang')) === 'zh-CN', 'the enterprises page is in Chinese');
  check((await text()).includes('还没有可以代表的企业'), 'a person with no enterprise is told how to bind one');
  console.log('ok legal entry');

  // Level 1 → 2.
  await page.goto(`${YUNID}/account/verify`);
  check((await page.textContent('#level')).trim() === '1', 'level 1 at first');
  await shot('verify');
  await page.click('#verify-online');
  await page.waitForURL((u) => u.pathname === '/account/verify' && u.searchParams.get('m') === 'raised2');
  check((await page.textContent('#level')).trim() === '2', 'level 2 after the online checks');
  console.log('ok level 2');

  // Level 2 → 3 through the provider's page and back.
  await page.click('#verify-face');
  await page.click('#face-continue');
  await page.waitForURL((u) => u.pathname === '/account/verify' && u.searchParams.get('m') === 'raised3');
  check((await page.textContent('#level')).trim() === '3', 'level 3 after the face verification');
  check(visited.some((u) => u.startsWith(PROVIDER)), `the browser went to the provider: ${visited.join(' ')}`);
  console.log('ok level 3');

  // The company, by credit code.
  await page.goto(`${YUNID}/account/organisations`);
  check((await page.getAttribute('#credit_code', 'autocomplete')) === 'off', 'the credit code field says autocomplete');
  await page.fill('#credit_code', COMPANY);
  await page.click('#bind');
  await page.waitForURL((u) => u.searchParams.get('m') === 'bound');
  check((await text()).includes(COMPANY), 'the bound company is listed');
  for (const id of ['#appointee', '#matters', '#valid_days']) {
    check((await page.getAttribute(id, 'autocomplete')) === 'off', `${id} says autocomplete`);
  }
  await shot('organisations');
  console.log('ok bind');
  check(violations.length === 0, `CSP violations: ${violations.join('\n')}`);
  console.log('all proofing flows passed');
} catch (e) {
  console.error(`FAILED at ${page.url()}: ${e.message}`);
  try {
    await shot('failure-proofing');
    console.error((await text()).slice(0, 1500));
  } catch {}
  await browser.close();
  process.exit(1);
}
await browser.close();
