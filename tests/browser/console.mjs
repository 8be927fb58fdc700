// The admin console in headless Chromium: an admin signs in through yunid (the console is an OIDC client
// of yunid: password, then the SMS code of the step-up), finds a person, verifies them at the counter,
// unlocks them, registers an app and sees its secret once, appoints and revokes a representative, reads
// the audit trail; adds a passkey and signs in with it alone on another device; then does a task with
// the keyboard alone (Tab and Enter).
//
// Run by tests/it/console_browser.rs, which starts yunid and an SMS inbox and passes:
//   YUNID_URL               yunid's issuer (http://localhost:<port>: WebAuthn needs a domain)
//   ADMIN_ID_NUMBER, ADMIN_PASSWORD, ADMIN_PHONE    a super admin (verified phone)
//   PERSON_ID_NUMBER        a locked person to find, verify and unlock
//   ORG_CODE                an organisation's unified social credit code
//   REP_PHONE, REP_NAME     the person appointed as its agent (by phone)
//   SMS_LATEST_URL          GET → {"count", "to", "code"} of the latest SMS yunid sent (404 before any)
//   SCREENSHOT_DIR          where console-<step>.png and failure screenshots go
//   CHROMIUM                the browser (default /usr/bin/chromium)
//   SCENARIO                `all` (default), `console`, `passkey` or `keyboard`
//
// Prints one line per flow; on the first failure prints what went wrong, saves a screenshot, exits 1.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`console.mjs: environment variable ${name} is not set`);
    process.exit(2);
  }
  return value.replace(/\/+$/, '');
}

const YUNID = need('YUNID_URL');
const ADMIN = { id: need('ADMIN_ID_NUMBER'), password: need('ADMIN_PASSWORD'), phone: need('ADMIN_PHONE') };
const PERSON_ID = need('PERSON_ID_NUMBER');
const ORG_CODE = need('ORG_CODE');
const REP = { phone: need('REP_PHONE'), name: need('REP_NAME') };
const SMS_LATEST = need('SMS_LATEST_URL');
const SHOTS = need('SCREENSHOT_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCENARIO = process.env.SCENARIO || 'all';
const TIMEOUT = 15_000;

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-gpu', '--no-proxy-server', '--disable-dev-shm-usage', '--no-first-run'],
});

let lastPage = null;
const consoleLines = [];

async function newPage() {
  const context = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1024, height: 768 } });
  context.setDefaultTimeout(TIMEOUT);
  context.setDefaultNavigationTimeout(TIMEOUT);
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`[console.${m.type()}] ${page.url()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${page.url()}: ${e.message}`));
  lastPage = page;
  return page;
}

async function at(page, pathname) {
  const origin = new URL(YUNID).origin;
  await page.waitForURL((u) => u.origin === origin && u.pathname === pathname, { waitUntil: 'load' });
}

async function bodyText(page) {
  return page.locator('body').innerText();
}

async function expectText(page, text) {
  const body = await bodyText(page);
  check(body.includes(text), `expected "${text}" at ${page.url()}; the page says:\n${body.slice(0, 1500)}`);
}

async function expectNoText(page, text) {
  const body = await bodyText(page);
  check(!body.includes(text), `did not expect "${text}" at ${page.url()}`);
}

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `console-${name}.png`), fullPage: true });
}

async function smsCount() {
  const res = await fetch(SMS_LATEST);
  if (res.status === 404) return 0;
  check(res.ok, `the SMS inbox answered ${res.status}`);
  return (await res.json()).count;
}

async function smsAfter(before) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    const res = await fetch(SMS_LATEST);
    if (res.ok) {
      const latest = await res.json();
      if (latest.count > before) return latest;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Failure('no SMS reached the inbox');
}

/// Opens the console: it sends the browser to yunid's /authorize, which shows the login page; password,
/// then the step-up (an SMS code to the admin's own phone), then back through /admin/callback.
async function signIn(page) {
  await page.goto(`${YUNID}/admin`);
  await at(page, '/login');
  await shot(page, 'login');
  await page.fill('#username', ADMIN.id);
  await page.fill('#password', ADMIN.password);
  await page.click('form[action="/login"] button[type="submit"]');
  await at(page, '/login');
  await expectText(page, '需要进一步验证');
  check((await page.locator('#phone').count()) === 0, 'the step-up code goes to the known phone');
  const before = await smsCount();
  await page.click('form[action="/login/sms/send"] button[type="submit"]');
  await page.waitForSelector('#code');
  const sms = await smsAfter(before);
  check(String(sms.to).endsWith(ADMIN.phone), `the code went to ${sms.to}`);
  await page.fill('#code', sms.code);
  await page.click('form[action="/login/sms/verify"] button[type="submit"]');
  await at(page, '/admin');
  await expectText(page, '超级管理员');
}

/// A virtual platform authenticator (user-verifying, resident keys) for this page (DevTools protocol).
async function virtualAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

/// The cell next to the row header `label` in the page's first table that has one.
async function rowValue(page, label) {
  return (await page.locator(`tr:has(th:text-is("${label}")) td`).first().innerText()).trim();
}

/// Presses Tab until the focused element satisfies `wanted` (given the element's description);
/// fails after `max` presses. Returns the number of presses.
async function tabTo(page, what, wanted, max = 40) {
  for (let i = 1; i <= max; i += 1) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      const style = el ? getComputedStyle(el) : null;
      return el
        ? {
            tag: el.tagName.toLowerCase(),
            text: (el.innerText || el.value || '').trim(),
            id: el.id,
            href: el.getAttribute('href'),
            label: el.labels && el.labels[0] ? el.labels[0].innerText.trim() : el.getAttribute('aria-label'),
            outline: style.outlineStyle,
            outlineWidth: style.outlineWidth,
          }
        : null;
    });
    if (focused && wanted(focused)) {
      check(
        focused.outline !== 'none' && focused.outlineWidth !== '0px',
        `the focus on ${what} is not visible (outline ${focused.outline} ${focused.outlineWidth})`,
      );
      return i;
    }
  }
  throw new Failure(`${what} was not reached with ${max} Tab presses at ${page.url()}`);
}

const flows = {
  async console() {
    const page = await newPage();
    await signIn(page);
    await shot(page, 'home');

    // Find the locked person, verify them at the counter, unlock them.
    await page.click('nav.console a[href="/admin/persons"]');
    await at(page, '/admin/persons');
    await page.fill('#id_number', PERSON_ID);
    await page.click('form[action="/admin/persons"] button[type="submit"]');
    await at(page, '/admin/persons');
    await expectNoText(page, PERSON_ID);
    check((await rowValue(page, '状态')) === '已锁定', `the person is ${await rowValue(page, '状态')}`);
    await page.click('form[action$="/verify"] button');
    await at(page, '/admin/persons');
    await expectText(page, '已完成');
    check((await rowValue(page, '实名等级')) === '3', 'counter verification raised the level to 3');
    await page.click('form[action$="/unlock"] button');
    await at(page, '/admin/persons');
    check((await rowValue(page, '状态')) === '正常', 'the person is active again');
    await shot(page, 'person');

    // Register an app: the secret is shown once; a reload does not show it again.
    await page.click('nav.console a[href="/admin/apps"]');
    await at(page, '/admin/apps');
    await page.fill('#name', '不动产登记');
    await page.fill('#department', 'land');
    await page.fill('#redirect_uri', 'https://land.example.gov.cn/cb');
    await page.click('form[action="/admin/apps"] button[type="submit"]');
    await at(page, '/admin/apps');
    await expectText(page, '密钥只显示这一次');
    const secret = await rowValue(page, 'client_secret');
    check(secret.length >= 40, `a long secret is shown: "${secret}"`);
    await shot(page, 'app-created');
    await page.reload();
    await at(page, '/admin/apps');
    await expectNoText(page, secret);
    await expectNoText(page, '密钥只显示这一次');
    const registered = await page.locator('td', { hasText: '不动产登记' }).count();
    check(registered === 1, `the app is listed once after the reload (${registered})`);

    // Appoint an agent for the organisation, by phone, then revoke the appointment.
    await page.click('nav.console a[href="/admin/orgs"]');
    await at(page, '/admin/orgs');
    await page.fill('#code', ORG_CODE);
    await page.click('form[action="/admin/orgs"] button[type="submit"]');
    await at(page, '/admin/orgs');
    await expectText(page, '代理人');
    await page.fill('#person', REP.phone);
    await page.selectOption('#role', 'agent');
    await page.fill('#matters', 'tax.declare');
    await page.fill('#valid_until', '2099-12-31');
    await page.click('form[action$="/representatives"] button[type="submit"]');
    await at(page, '/admin/orgs');
    await expectText(page, '已完成');
    const row = page.locator('tr', { hasText: REP.name });
    check((await row.count()) === 1, `${REP.name} is listed as a representative`);
    check((await row.innerText()).includes('经办人'), 'as an agent');
    await shot(page, 'representatives');
    await row.locator('button').click();
    await at(page, '/admin/orgs');
    check((await page.locator('tr', { hasText: REP.name }).count()) === 0, 'the revoked agent is gone');

    // The audit trail shows all of it.
    await page.click('nav.console a[href="/admin/audit"]');
    await at(page, '/admin/audit');
    for (const action of [
      'console.sign_in',
      'person.search',
      'person.verify',
      'person.unlock',
      'client.create',
      'representation.appoint',
      'representation.revoke',
    ]) {
      await expectText(page, action);
    }
    await expectNoText(page, PERSON_ID);
    await shot(page, 'audit');
    await page.context().close();
  },

  // An admin who added a passkey signs in to the console with it alone: a user-verified passkey is
  // enough for acr 2, so yunid asks for nothing else.
  async passkey() {
    const page = await newPage();
    const first = await virtualAuthenticator(page);
    await signIn(page);
    await page.goto(`${YUNID}/account`);
    await page.fill('#passkey-name', '控制台密钥');
    await page.click('#passkey-add');
    const listed = page.locator('li', { hasText: '控制台密钥' });
    try {
      await listed.waitFor();
    } catch {
      const said = await page.locator('#passkey-status').textContent({ timeout: 1000 }).catch(() => '');
      throw new Failure(`the passkey is not listed; the page says: ${said}`);
    }
    const { credentials } = await first.cdp.send('WebAuthn.getCredentials', {
      authenticatorId: first.authenticatorId,
    });
    check(credentials.length === 1, `the authenticator holds ${credentials.length} credentials`);

    // The console's sign-out logs out of yunid as well (RP-initiated logout) and says so.
    await page.goto(`${YUNID}/admin`);
    await page.click('form[action="/admin/sign-out"] button');
    await at(page, '/admin');
    await expectText(page, '您已退出登录');
    await page.context().close();

    // Another device holding the passkey: the console sends it to yunid, the passkey signs in.
    const device = await newPage();
    const second = await virtualAuthenticator(device);
    await device.goto(`${YUNID}/admin`);
    await at(device, '/login');
    await device.click('nav.methods a[href*="method=passkey"]');
    await device.waitForSelector('#passkey-button');
    await second.cdp.send('WebAuthn.addCredential', {
      authenticatorId: second.authenticatorId,
      credential: credentials[0],
    });
    const before = await smsCount();
    await device.click('#passkey-button');
    await at(device, '/admin');
    await expectText(device, '超级管理员');
    check((await smsCount()) === before, 'no SMS code was needed');
    await shot(device, 'passkey-home');
    await device.context().close();
  },

  async keyboard() {
    const page = await newPage();
    await signIn(page);
    await page.goto(`${YUNID}/admin`);
    // The first Tab reaches the skip link; Enter moves the focus to the main content.
    await tabTo(page, 'the skip link', (f) => f.href === '#main');
    await page.keyboard.press('Enter');
    const focusedMain = await page.evaluate(() => document.activeElement && document.activeElement.id);
    check(focusedMain === 'main', `Enter on the skip link focuses the main content, not "${focusedMain}"`);
    // Back at the top: through the navigation to the persons page.
    await page.goto(`${YUNID}/admin`);
    await tabTo(page, 'the persons link', (f) => f.tag === 'a' && f.href === '/admin/persons');
    await Promise.all([at(page, '/admin/persons'), page.keyboard.press('Enter')]);
    // The ID number field has its label; type the number, Enter submits.
    await tabTo(page, 'the ID number field', (f) => f.id === 'id_number' && f.label === '居民身份证号码');
    await page.keyboard.type(PERSON_ID);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/admin/persons' && u.searchParams.has('person'), { waitUntil: 'load' }),
      page.keyboard.press('Enter'),
    ]);
    check((await rowValue(page, '实名等级')).length > 0, 'the person was found');
    // A real button (not a div) ends the person's sessions.
    await tabTo(page, 'the end-sessions button', (f) => f.tag === 'button' && f.text === '结束登录');
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/admin/persons' && u.searchParams.get('notice') === 'done', {
        waitUntil: 'load',
      }),
      page.keyboard.press('Enter'),
    ]);
    await expectText(page, '已完成');
    await shot(page, 'keyboard');
    await page.context().close();
  },
};

let failed = false;
for (const [name, run] of Object.entries(flows)) {
  if (SCENARIO !== 'all' && SCENARIO !== name) continue;
  const started = Date.now();
  try {
    await run();
    console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}`);
    console.error(`flow "${name}" failed: ${e instanceof Failure ? e.message : e.stack || e}`);
    if (lastPage && !lastPage.isClosed()) {
      const file = path.join(SHOTS, `failure-console-${name}.png`);
      console.error(`  at ${lastPage.url()} (screenshot ${file})`);
      fs.mkdirSync(SHOTS, { recursive: true });
      await lastPage.screenshot({ path: file, fullPage: true }).catch(() => {});
      const body = await lastPage.locator('body').innerText({ timeout: 2000 }).catch(() => '');
      console.error(`  the page says:\n${body.slice(0, 2000)}`);
    }
    if (consoleLines.length) console.error(`  browser console:\n  ${consoleLines.join('\n  ')}`);
    break;
  }
}
await browser.close();
process.exit(failed ? 1 : 0);
