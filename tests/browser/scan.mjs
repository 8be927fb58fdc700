// Scan to sign in in headless Chromium: the login page's QR code, its script that polls and continues
// once the phone approved, the denial it reports, and the same page without JavaScript (Continue button).
//
// Run by tests/it/scan.rs, which plays the province's app. Environment: YUNID_URL, CHROMIUM. One JSON line
// per step on stdout; the test answers on stdin with a line ("go") where the page must wait for the phone.

import readline from 'node:readline';
import { chromium } from 'playwright-core';

const YUNID = process.env.YUNID_URL.replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 20_000;
const out = (o) => console.log(JSON.stringify(o));
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const told = async () => (await lines.next()).value;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-gpu', '--no-proxy-server', '--disable-dev-shm-usage'],
});

/** Opens the scan page in a fresh browser; reports the QR token and handle. */
async function show(name, javaScriptEnabled) {
  const context = await browser.newContext({ javaScriptEnabled, locale: 'zh-CN' });
  const page = await context.newPage();
  await page.goto(`${YUNID}/login/scan`);
  out({
    step: 'shown',
    flow: name,
    c: await page.inputValue('input[name=c]'),
    handle: await page.inputValue('input[name=handle]'),
    qr: await page.locator('.qr svg').count(),
    noscript: (await page.content()).includes('<noscript>'),
  });
  return page;
}

try {
  // 1. With script: the number appears by itself once the phone scanned, and the page continues by
  //    itself once the phone approved.
  let page = await show('approve', true);
  await page.waitForSelector('#scan-number-line:not([hidden])', { timeout: TIMEOUT });
  out({ step: 'number', flow: 'approve', number: (await page.textContent('#scan-number')).trim() });
  await page.waitForURL(/\/account$/, { timeout: TIMEOUT });
  out({ step: 'signed_in', flow: 'approve', url: page.url() });

  // 2. With script: a denial is reported on the page, and nobody is signed in.
  page = await show('deny', true);
  await page.waitForSelector('#scan-number-line:not([hidden])', { timeout: TIMEOUT });
  out({ step: 'number', flow: 'deny', number: (await page.textContent('#scan-number')).trim() });
  await page.waitForFunction(
    () => document.getElementById('scan-status').textContent === document.getElementById('scan').dataset.denied,
    null,
    { timeout: TIMEOUT },
  );
  await page.goto(`${YUNID}/account`);
  out({ step: 'denied', flow: 'deny', url: page.url() });

  // 3. Without script: the page says what to do; Refresh shows the number; Continue signs in.
  page = await show('noscript', false);
  await told();
  await page.click('text=刷新');
  out({ step: 'number', flow: 'noscript', number: (await page.textContent('#scan-number')).trim() });
  await told();
  await page.click('#scan-finish button[type=submit]');
  await page.waitForURL(/\/account$/, { timeout: TIMEOUT });
  out({ step: 'signed_in', flow: 'noscript', url: page.url() });
} catch (e) {
  out({ step: 'error', error: String(e) });
  process.exitCode = 1;
} finally {
  await browser.close();
  // stdin stays open (the test may still hold it): end here.
  process.exit(process.exitCode ?? 0);
}
