// Real-browser flows through yunid and the two demo department apps, in headless Chromium.
//
// Run by tests/it/browser.rs, which starts yunid, an SMS inbox and both apps and passes:
//   YUNID_URL                  yunid's issuer (http://localhost:<port>: WebAuthn needs a domain)
//   SOCIAL_SECURITY_URL        the social_security demo app
//   BUSINESS_REGISTRATION_URL  the business_registration demo app
//   PERSON_ID_NUMBER, PERSON_PHONE, PERSON_PASSWORD, PERSON_NAME   a registered person (verified phone)
//   SMS_LATEST_URL             GET → {"count", "to", "code"} of the latest SMS yunid sent (404 before any)
//   SCREENSHOT_DIR             where <lang>/<page>.png go (and failure-<flow>.png)
//   CHROMIUM                   the browser (default /usr/bin/chromium)
//
// Prints one line per flow; on the first failure prints what went wrong, saves a screenshot of the page
// and exits 1.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`flows.mjs: environment variable ${name} is not set`);
    process.exit(2);
  }
  return value.replace(/\/+$/, '');
}

const YUNID = need('YUNID_URL');
const SOCIAL = need('SOCIAL_SECURITY_URL');
const BUSINESS = need('BUSINESS_REGISTRATION_URL');
const PERSON = {
  id: need('PERSON_ID_NUMBER'),
  phone: need('PERSON_PHONE'),
  password: need('PERSON_PASSWORD'),
  name: process.env.PERSON_NAME || '张三',
};
const SMS_LATEST = need('SMS_LATEST_URL');
const SHOTS = need('SCREENSHOT_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const TIMEOUT = 15_000;

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

// ---------------------------------------------------------------------------------------------
// Browser, contexts and pages. Every page is remembered (for the failure report) with its console.
// ---------------------------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--no-proxy-server',
    '--disable-dev-shm-usage',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
  ],
});

let lastPage = null;
const consoleLines = [];

async function newContext(locale = 'zh-CN') {
  const context = await browser.newContext({ locale, viewport: { width: 1024, height: 768 } });
  context.setDefaultTimeout(TIMEOUT);
  context.setDefaultNavigationTimeout(TIMEOUT);
  return context;
}

async function newPage(context) {
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`[console.${m.type()}] ${page.url()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${page.url()}: ${e.message}`));
  lastPage = page;
  return page;
}

/// Waits until the page is at `base` + `pathname` (any query).
async function at(page, base, pathname) {
  const origin = new URL(base).origin;
  await page.waitForURL((u) => u.origin === origin && u.pathname === pathname, { waitUntil: 'load' });
}

async function heading(page) {
  return (await page.locator('h1').first().textContent()).trim();
}

async function expectHeading(page, text) {
  const h1 = await heading(page);
  check(h1.includes(text), `expected the heading "${text}" at ${page.url()}, found "${h1}"`);
}

async function expectLang(page, lang) {
  const actual = await page.locator('html').getAttribute('lang');
  check(actual === lang, `expected <html lang="${lang}"> at ${page.url()}, found "${actual}"`);
}

async function bodyText(page) {
  return page.locator('body').innerText();
}

async function expectText(page, text) {
  const body = await bodyText(page);
  check(body.includes(text), `expected "${text}" at ${page.url()}; the page says:\n${body.slice(0, 1500)}`);
}

async function shot(page, lang, name) {
  const dir = path.join(SHOTS, lang);
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
}

// ---------------------------------------------------------------------------------------------
// The demo apps.
// ---------------------------------------------------------------------------------------------

/// The signed-in person as an app's home page shows them ({} when nobody is signed in).
async function appUser(page) {
  const rows = await page.$$eval('tr', (trs) =>
    trs.map((tr) => [tr.querySelector('th')?.textContent ?? '', tr.querySelector('td')?.textContent ?? '']),
  );
  const user = {};
  for (const [label, value] of rows) {
    if (label === 'sub') user.sub = value;
    else if (label.startsWith('姓名')) user.name = value;
    else if (label.startsWith('手机号')) user.phone = value;
    else if (label.startsWith('认证等级')) user.acr = value;
  }
  return user;
}

async function expectSignedIn(page, app, acr) {
  await at(page, app, '/');
  await expectText(page, '已通过统一身份认证登录');
  const user = await appUser(page);
  check(user.name === PERSON.name, `${app} shows the name "${user.name}", expected "${PERSON.name}"`);
  if (acr) check(user.acr === acr, `${app} shows acr "${user.acr}", expected "${acr}"`);
  return user;
}

async function expectSignedOut(page, app) {
  await at(page, app, '/');
  await expectText(page, '您尚未登录');
}

/// From an app's home page, clicks its login link; returns where yunid stopped (its path).
async function startLogin(page, app) {
  await page.goto(`${app}/`);
  await expectSignedOut(page, app);
  await page.click('a[href="/login"]');
  const yunid = new URL(YUNID).origin;
  await page.waitForURL((u) => u.origin === yunid, { waitUntil: 'load' });
  return new URL(page.url()).pathname;
}

// ---------------------------------------------------------------------------------------------
// yunid's pages.
// ---------------------------------------------------------------------------------------------

async function passwordLogin(page, id = PERSON.id, password = PERSON.password) {
  await page.fill('#username', id);
  await page.fill('#password', password);
  await page.click('form[action="/login"] button[type="submit"]');
}

/// On the consent page: allow or deny.
async function consent(page, decision) {
  await at(page, YUNID, '/consent');
  await page.click(`button[name="decision"][value="${decision}"]`);
}

async function smsCount() {
  const res = await fetch(SMS_LATEST);
  if (res.status === 404) return 0;
  check(res.ok, `the SMS inbox answered ${res.status}`);
  return (await res.json()).count;
}

/// The code of the first SMS after the `before`-th, as the person would read it on their phone.
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

/// On the SMS tab: sends a code (to `phone`, or with no phone field to the session's own) and types it.
async function smsLogin(page, phone) {
  const before = await smsCount();
  if (phone) await page.fill('#phone', phone);
  else check((await page.locator('#phone').count()) === 0, 'a step-up code goes to the known phone: no phone field');
  await page.click('form[action="/login/sms/send"] button[type="submit"]');
  await page.waitForSelector('#code');
  const autocomplete = await page.getAttribute('#code', 'autocomplete');
  check(autocomplete === 'one-time-code', `the code field has autocomplete="${autocomplete}"`);
  const sms = await smsAfter(before);
  check(String(sms.to).endsWith(PERSON.phone), `the code went to ${sms.to}, not to ${PERSON.phone}`);
  await page.fill('#code', sms.code);
  await page.click('form[action="/login/sms/verify"] button[type="submit"]');
}

/// A valid resident ID number (GB 11643 check character) for a person registering in the browser.
function residentId(seq) {
  const body = `110105198506150${String(seq).padStart(2, '0')}`;
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = [...body].reduce((s, c, i) => s + Number(c) * weights[i], 0);
  return body + '10X98765432'[sum % 11];
}

/// Registers a new person on /register (a code to the phone first, then the code and the details);
/// returns their ID number and password.
async function register(page, seq, name, lang) {
  const person = { id: residentId(seq), password: `browser passphrase ${seq} sunny meadow` };
  await page.goto(`${YUNID}/register`);
  if (lang) await shot(page, lang, 'register');
  await page.fill('#phone', `1390000${String(seq).padStart(4, '0')}`);
  const before = await smsCount();
  await page.click('form[action="/register/code"] button[type="submit"]');
  await page.waitForSelector('#code');
  if (lang) await shot(page, lang, 'register-details');
  const sms = await smsAfter(before);
  await page.fill('#code', sms.code);
  await page.fill('#id_number', person.id);
  await page.fill('#name', name);
  await page.fill('#password', person.password);
  await page.click('form[action="/register"] button[type="submit"]');
  await at(page, YUNID, '/register');
  check(
    (await page.locator('.error').count()) === 0,
    `registration refused: ${await bodyText(page)}`,
  );
  return person;
}

// ---------------------------------------------------------------------------------------------
// Passkeys: Chromium's virtual authenticator (DevTools protocol), one per page.
// ---------------------------------------------------------------------------------------------

async function virtualAuthenticator(context, page) {
  const cdp = await context.newCDPSession(page);
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

/// After a passkey was offered: past consent (if asked) back to the social security app.
async function passkeyArrival(page) {
  const social = new URL(SOCIAL).origin;
  await page.waitForURL((u) => u.origin === social || u.pathname === '/consent', { waitUntil: 'load' });
  if (new URL(page.url()).pathname === '/consent') await consent(page, 'allow');
}

// ---------------------------------------------------------------------------------------------
// The flows.
// ---------------------------------------------------------------------------------------------

const flows = {
  // a. Password login at one app, single sign-on at the other, single logout from either.
  async 'password login, single sign-on, single logout'() {
    const context = await newContext();
    const page = await newPage(context);
    check((await startLogin(page, SOCIAL)) === '/login', 'the first login shows the login page');
    await expectLang(page, 'zh-CN');
    await expectHeading(page, '登录');
    await expectText(page, '社保服务');
    await passwordLogin(page);
    await consent(page, 'allow');
    const social = await expectSignedIn(page, SOCIAL, '1');

    // The second app: no password, only consent.
    const stop = await startLogin(page, BUSINESS);
    check(stop === '/consent', `single sign-on: the second app went to ${stop}, not straight to consent`);
    await expectText(page, '企业开办');
    await consent(page, 'allow');
    const business = await expectSignedIn(page, BUSINESS);
    // Two apps on a loopback host each get a sector of their own: they cannot join the person.
    check(social.sub !== business.sub, 'two loopback apps see different (pairwise) subjects');

    // Logging out at one app ends the SSO session; yunid tells the other app by back-channel.
    await page.goto(`${SOCIAL}/`);
    await page.click('a[href="/logout"]');
    await expectSignedOut(page, SOCIAL);
    const deadline = Date.now() + 10_000;
    for (;;) {
      await page.goto(`${BUSINESS}/`);
      if ((await bodyText(page)).includes('您尚未登录')) break;
      check(Date.now() < deadline, 'the other app still shows the person signed in 10 s after logout');
      await page.waitForTimeout(250);
    }
    await page.goto(`${YUNID}/account`);
    await at(page, YUNID, '/login');
    await context.close();
  },

  // b. SMS code login.
  async 'SMS code login'() {
    const context = await newContext();
    const page = await newPage(context);
    await startLogin(page, SOCIAL);
    await page.click('nav.methods a[href*="method=sms"]');
    await page.waitForSelector('#phone');
    await smsLogin(page, PERSON.phone);
    if (new URL(page.url()).pathname === '/consent') await consent(page, 'allow');
    await expectSignedIn(page, SOCIAL, '1');
    await context.close();
  },

  // c. A passkey added on the account page, then a passwordless login on another "device" holding it.
  async 'passkey registration and passwordless login'() {
    const first = await newContext();
    const page = await newPage(first);
    const authenticator = await virtualAuthenticator(first, page);
    await page.goto(`${YUNID}/login`);
    await passwordLogin(page);
    await at(page, YUNID, '/account');
    await expectHeading(page, '我的账号');
    // A password alone does not add a passkey: the account page sends the person through a step-up (an
    // SMS code to the registered phone) and back.
    check((await page.locator('#passkey-add').count()) === 0, 'no "add" button after a password alone');
    await page.click('#passkey-step-up');
    await at(page, YUNID, '/login');
    await smsLogin(page);
    await at(page, YUNID, '/account');
    await page.fill('#passkey-name', '测试密钥');
    await page.click('#passkey-add');
    const listed = page.locator('li', { hasText: '测试密钥' });
    const status = page.locator('#passkey-status:not(:empty)');
    await listed.or(status).first().waitFor();
    if ((await listed.count()) !== 1) {
      throw new Failure(`the passkey is not listed; the page says: ${await status.textContent()}`);
    }
    // The apps the person allowed are listed by name; "revoke" withdraws a consent.
    const apps = page.locator('li:has(form[action^="/account/apps/"])');
    const names = (await apps.allInnerTexts()).join(' | ');
    check(names.includes('社保服务') && names.includes('企业开办'), `connected apps listed as: ${names}`);
    await apps.filter({ hasText: '企业开办' }).locator('button[type="submit"]').click();
    await apps.filter({ hasText: '企业开办' }).waitFor({ state: 'detached' });
    await at(page, YUNID, '/account');
    const left = (await apps.allInnerTexts()).join(' | ');
    check(!left.includes('企业开办') && left.includes('社保服务'), `after revoking, connected apps: ${left}`);

    const { credentials } = await authenticator.cdp.send('WebAuthn.getCredentials', {
      authenticatorId: authenticator.authenticatorId,
    });
    check(credentials.length === 1, `the authenticator holds ${credentials.length} credentials`);
    check(credentials[0].isResidentCredential, 'the passkey is a discoverable (resident) credential');

    // Another browser holding the same credential signs in without a user name or password: the passkey
    // tab's button. (The credential is added once the passkey tab is open: on the password tab, the
    // autofill request would take it first.)
    const second = await newContext();
    const device = await newPage(second);
    const other = await virtualAuthenticator(second, device);
    await startLogin(device, SOCIAL);
    await device.click('nav.methods a[href*="method=passkey"]');
    await device.waitForSelector('#passkey-button');
    await other.cdp.send('WebAuthn.addCredential', {
      authenticatorId: other.authenticatorId,
      credential: credentials[0],
    });
    await device.click('#passkey-button');
    await passkeyArrival(device);
    await expectSignedIn(device, SOCIAL, '2');

    // And by autofill (conditional mediation on the user-name field): the virtual authenticator picks
    // the passkey as a person would from the list, with no click on the page. The credential is taken
    // as it is now: with an older signature counter yunid would refuse it as a possible clone.
    const used = await other.cdp.send('WebAuthn.getCredentials', { authenticatorId: other.authenticatorId });
    const third = await newContext();
    const phone = await newPage(third);
    const autofill = await virtualAuthenticator(third, phone);
    await autofill.cdp.send('WebAuthn.addCredential', {
      authenticatorId: autofill.authenticatorId,
      credential: used.credentials[0],
    });
    await phone.goto(`${SOCIAL}/`);
    await phone.click('a[href="/login"]');
    await passkeyArrival(phone);
    await expectSignedIn(phone, SOCIAL, '2');
    await first.close();
    await second.close();
    await third.close();
  },

  // d. Step-up: a password session, then an app asks for acr 2; yunid asks for an SMS code only.
  async 'step-up to two factors with an SMS code'() {
    const context = await newContext();
    const page = await newPage(context);
    await startLogin(page, SOCIAL);
    await passwordLogin(page);
    if (new URL(page.url()).pathname === '/consent') await consent(page, 'allow');
    await expectSignedIn(page, SOCIAL, '1');
    await page.goto(`${SOCIAL}/login?acr=2`);
    await at(page, YUNID, '/login');
    await expectHeading(page, '需要进一步验证');
    check(
      (await page.locator('nav.methods a[href*="method=password"]').count()) === 0,
      'step-up does not offer the password the session already used',
    );
    await smsLogin(page, null);
    await expectSignedIn(page, SOCIAL, '2');
    await context.close();
  },

  // e. A person who declines: the app gets access_denied and nobody is signed in.
  async 'consent declined'() {
    const context = await newContext();
    const page = await newPage(context);
    const person = await register(page, 1, '李四');
    await startLogin(page, BUSINESS);
    await passwordLogin(page, person.id, person.password);
    await at(page, YUNID, '/consent');
    await expectText(page, '企业开办');
    await consent(page, 'deny');
    await at(page, BUSINESS, '/callback');
    await expectText(page, 'access_denied');
    await page.goto(`${BUSINESS}/`);
    await expectSignedOut(page, BUSINESS);
    await context.close();
  },

  // f. Every page, in Chinese and in English.
  async 'screenshots of every page in zh-CN and en'() {
    for (const [lang, locale, seq, t] of [
      ['zh-CN', 'zh-CN', 2, { login: '登录', stepUp: '需要进一步验证', consent: '授权确认', account: '我的账号', logout: '退出登录', error: '无法继续', register: '注册', home: '统一身份认证' }],
      ['en', 'en-US', 3, { login: 'Sign in', stepUp: 'Further verification needed', consent: 'Allow access', account: 'My account', logout: 'Sign out', error: 'Cannot continue', register: 'Register', home: 'Unified Identity' }],
    ]) {
      const context = await newContext(locale);
      const page = await newPage(context);
      const page_ = async (name, title) => {
        await expectLang(page, lang);
        await expectHeading(page, title);
        await shot(page, lang, name);
      };

      // A first visit.
      await page.goto(`${YUNID}/`);
      await page_('home', t.home);

      await page.goto(`${YUNID}/authorize?client_id=no-such-app&response_type=code&scope=openid`);
      await page_('error', t.error);

      const person = await register(page, seq, lang === 'en' ? 'Wang Wu' : '王五', lang);
      await page_('registered', t.register);

      await startLogin(page, SOCIAL);
      await page_('login-password', t.login);
      await page.click('nav.methods a[href*="method=sms"]');
      await page.waitForSelector('#phone');
      await page_('login-sms', t.login);
      await page.fill('#phone', `1390000${String(seq).padStart(4, '0')}`);
      await page.click('form[action="/login/sms/send"] button[type="submit"]');
      await page.waitForSelector('#code');
      await page_('login-sms-code', t.login);
      await page.click('nav.methods a[href*="method=passkey"]');
      await page.waitForSelector('#passkey-button');
      await page_('login-passkey', t.login);
      await page.click('nav.methods a[href*="method=password"]');
      await page.waitForSelector('#password');
      await passwordLogin(page, person.id, person.password);
      await at(page, YUNID, '/consent');
      await page_('consent', t.consent);
      await consent(page, 'allow');
      await at(page, SOCIAL, '/');

      await page.goto(`${SOCIAL}/login?acr=2`);
      await at(page, YUNID, '/login');
      await page_('step-up', t.stepUp);

      await page.goto(`${YUNID}/account`);
      await page_('account', t.account);

      await page.goto(`${YUNID}/logout`);
      await page_('logout-confirm', t.logout);
      await page.click('form[action="/logout"] button[type="submit"]');
      await at(page, YUNID, '/logout');
      await expectText(page, lang === 'en' ? 'You have been signed out' : '您已退出登录');
      await page_('logged-out', t.logout);

      if (lang === 'zh-CN') {
        // The header link switches the language (a cookie) and comes back to the same page.
        await page.click('header a.lang');
        await at(page, YUNID, '/logout');
        await expectLang(page, 'en');
      }
      await context.close();
    }
  },
};

// ---------------------------------------------------------------------------------------------

let failed = false;
for (const [name, run] of Object.entries(flows)) {
  const started = Date.now();
  try {
    await run();
    console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}`);
    console.error(`flow "${name}" failed: ${e instanceof Failure ? e.message : e.stack || e}`);
    if (lastPage && !lastPage.isClosed()) {
      const file = path.join(SHOTS, `failure-${name.replace(/[^a-zA-Z0-9]+/g, '-')}.png`);
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
