// Drives panva's openid-client v6 (a strict, certified RP library) through the
// code flow with PKCE, userinfo, refresh, introspection, client credentials
// and revocation against gatehouse.
import * as client from 'openid-client';
import { assert, env, expectRedirect, fail, request, run, submitForm } from './lib.mjs';

const discover = (clientId, secret) =>
  client.discovery(new URL(`${env('GATEHOUSE_URL')}/oidc`), clientId, undefined, client.ClientSecretBasic(secret), {
    execute: [client.allowInsecureRequests],
  });

// The OAuth error code of a failed token request, whether it came in the JSON
// body or in a WWW-Authenticate challenge (e.g. a 401 invalid_client).
function oauthError(error) {
  if (error instanceof client.ResponseBodyError) return error.error;
  if (error instanceof client.WWWAuthenticateChallengeError) return error.cause?.[0]?.parameters?.error ?? null;
  throw error;
}

run(async () => {
  const redirectUri = env('REDIRECT_URI');
  const resource = env('RESOURCE');
  const config = await discover(env('CLIENT_ID'), env('CLIENT_SECRET'));

  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: `openid offline_access profile email roles ${env('SCOPES')}`,
    prompt: 'consent',
    resource,
    nonce,
    state,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
  });

  const signInPage = await request(authorizationUrl);
  if (signInPage.status !== 200) await fail(signInPage, 'sign-in page');
  const signedIn = await submitForm(await signInPage.text(), signInPage.url, {
    username: env('USERNAME'),
    password: env('PASSWORD'),
  });
  const callback = await expectRedirect(signedIn, redirectUri, 'sign-in form');

  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier,
    expectedState: state,
    expectedNonce: nonce,
  });
  const idTokenClaims = tokens.claims();
  assert(tokens.refresh_token, `code grant returned no refresh_token: ${JSON.stringify(tokens)}`);
  const userInfo = await client.fetchUserInfo(config, tokens.access_token, idTokenClaims.sub);

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, { resource });
  const introspection = await client.tokenIntrospection(config, refreshed.access_token);

  const machineConfig = await discover(env('MACHINE_ID'), env('MACHINE_SECRET'));
  const machine = await client.clientCredentialsGrant(machineConfig, { resource, scope: env('MACHINE_SCOPES') });

  const latestRefreshToken = refreshed.refresh_token ?? tokens.refresh_token;
  await client.tokenRevocation(config, latestRefreshToken);
  let afterRevocation;
  try {
    await client.refreshTokenGrant(config, latestRefreshToken, { resource });
  } catch (error) {
    afterRevocation = { error: oauthError(error) };
  }
  if (!afterRevocation) throw new Error('refresh with a revoked refresh token succeeded');

  return {
    idTokenClaims,
    userInfo,
    codeGrant: {
      scope: tokens.scope ?? null,
      hasRefreshToken: typeof tokens.refresh_token === 'string',
      accessTokenIsOpaque: tokens.access_token.split('.').length !== 3,
    },
    refreshed: { accessToken: refreshed.access_token, scope: refreshed.scope ?? null, expiresIn: refreshed.expires_in ?? null },
    introspection,
    clientCredentials: { accessToken: machine.access_token, scope: machine.scope ?? null },
    afterRevocation,
  };
});
