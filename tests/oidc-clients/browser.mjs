// Signs in as a person would, in headless Debian Chromium on a phone-sized
// screen: a wrong password first, then the right one, for a public SPA client.
import { chromium } from 'playwright-core';
import { assert, env, pkce, randomString, run } from './lib.mjs';

const PHONE_WIDTH = 375;

run(async () => {
  const gatehouse = env('GATEHOUSE_URL');
  const clientId = env('CLIENT_ID');
  const redirectUri = env('REDIRECT_URI');
  const username = env('USERNAME');
  const password = env('PASSWORD');
  const { verifier, challenge } = pkce();
  const state = randomString();
  const authorizationUrl = `${gatehouse}/oidc/auth?${new URLSearchParams({
    client_id: clientId,
    redirect_uri: redirectUri,
    response_type: 'code',
    scope: 'openid profile',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  })}`;

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: PHONE_WIDTH, height: 667 }, isMobile: true });
    context.setDefaultTimeout(15_000);
    // The redirect URI's host does not exist: answer for it here.
    await context.route(
      (url) => url.href.startsWith(redirectUri),
      (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'signed in' }),
    );
    const page = await context.newPage();

    const response = await page.goto(authorizationUrl);
    if (response?.status() !== 200) throw new Error(`sign-in page answered ${response?.status()}: ${await response?.text()}`);
    const fitsPhoneWidth = await page.evaluate((width) => document.documentElement.scrollWidth <= width, PHONE_WIDTH);

    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(`${password}-wrong`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    const alertText = await alert.innerText();
    const errorShown = alertText.includes('correct username and password');
    assert(errorShown, `the alert after a wrong password says: ${alertText}`);
    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((url) => url.href.startsWith(redirectUri));
    const landedOn = page.url();
    const params = new URL(landedOn).searchParams;
    assert(params.get('state') === state, `state ${params.get('state')} !== ${state}`);
    assert(params.get('iss') === `${gatehouse}/oidc`, `iss ${params.get('iss')} !== ${gatehouse}/oidc`);
    const code = params.get('code');
    assert(code, `no code in ${landedOn}`);

    const tokenResponse = await fetch(`${gatehouse}/oidc/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id: clientId,
        code,
        code_verifier: verifier,
        redirect_uri: redirectUri,
      }),
    });
    const tokens = await tokenResponse.json().catch(() => ({}));
    assert(tokenResponse.ok && tokens.id_token, `token exchange answered ${tokenResponse.status}: ${JSON.stringify(tokens)}`);

    return {
      errorShown,
      landedOn,
      state: params.get('state'),
      iss: params.get('iss'),
      tokenResponseKeys: Object.keys(tokens).sort(),
      fitsPhoneWidth,
    };
  } finally {
    await browser.close();
  }
});
