// Drives the real @logto/node SDK (as Logto's Hasura guide configures it)
// through sign-in, token/userinfo calls and sign-out against gatehouse.
import LogtoClient from '@logto/node';
import { assert, env, expectRedirect, fail, jar, request, run, submitForm } from './lib.mjs';

run(async () => {
  const endpoint = env('GATEHOUSE_URL');
  const appId = env('APP_ID');
  const appSecret = env('APP_SECRET');
  const redirectUri = env('REDIRECT_URI');
  const postLogoutRedirectUri = env('POST_LOGOUT_REDIRECT_URI');
  const resource = env('RESOURCE');

  const store = new Map();
  const storage = {
    getItem: async (key) => store.get(key) ?? null,
    setItem: async (key, value) => void store.set(key, value),
    removeItem: async (key) => void store.delete(key),
  };
  let navigatedTo;
  const navigate = (url) => {
    navigatedTo = url;
  };
  const logto = new LogtoClient(
    { endpoint, appId, appSecret, scopes: env('SCOPES').split(' '), resources: [resource] },
    { navigate, storage },
  );

  await logto.signIn(redirectUri);
  const signInPage = await request(navigatedTo);
  if (signInPage.status !== 200) await fail(signInPage, 'sign-in page');
  const signedIn = await submitForm(await signInPage.text(), signInPage.url, {
    username: env('USERNAME'),
    password: env('PASSWORD'),
  });
  const callback = await expectRedirect(signedIn, redirectUri, 'sign-in form');
  await logto.handleSignInCallback(callback);

  const accessToken = await logto.getAccessToken(resource);
  const accessTokenClaims = await logto.getAccessTokenClaims(resource);
  const userInfo = await logto.fetchUserInfo();
  const idTokenClaims = await logto.getIdTokenClaims();
  // The SDK keeps the (possibly rotated) refresh token under this key.
  const refreshToken = await storage.getItem('refreshToken');
  assert(refreshToken, 'no refresh token stored after sign-in');

  // signOut() revokes the refresh token itself, then navigates to end_session.
  await logto.signOut(postLogoutRedirectUri);
  const endSession = await request(navigatedTo);
  let signedOut = endSession;
  if (endSession.status === 200) signedOut = await submitForm(await endSession.text(), endSession.url);
  const signOutLocation = await expectRedirect(signedOut, postLogoutRedirectUri, 'sign-out');

  const { tokenEndpoint } = await logto.getOidcConfig();
  const refresh = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${appId}:${appSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: appId }),
  });
  const refreshBody = await refresh.json().catch(() => ({}));

  return {
    accessToken,
    accessTokenClaims,
    userInfo,
    idTokenClaims,
    signOutLocation,
    ssoCookieCleared: !jar.has('gatehouse_sso'),
    refreshAfterSignOut: { status: refresh.status, error: refreshBody.error ?? null },
  };
});
