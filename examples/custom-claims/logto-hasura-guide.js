// The custom access-token claims script of Logto's "Integrate Logto with Hasura" guide
// (reconstructed: the guide publishes it only as a screenshot). It runs unchanged in gatehouse:
// the user's roles (Django groups) become Hasura's allowed roles, and the environment variable
// USER_DEFAULT_ROLE_NAMES names the default role.
//
//   gatehouse claims set --script examples/custom-claims/logto-hasura-guide.js \
//     --env USER_DEFAULT_ROLE_NAMES=user
const getCustomJwtClaims = async ({ token, context, environmentVariables }) => {
  const defaults = (environmentVariables?.USER_DEFAULT_ROLE_NAMES ?? '')
    .split(',').map((s) => s.trim()).filter(Boolean);
  const roleNames = (context?.user?.roles ?? []).map(({ name }) => name); // e.g. user:reader, user:maintainer
  return {
    'https://hasura.io/jwt/claims': {
      'x-hasura-user-id': context?.user?.id ?? token.accountId,
      'x-hasura-default-role': defaults[0] ?? roleNames[0],
      'x-hasura-allowed-roles': [...new Set([...defaults, ...roleNames])],
    },
  };
};
