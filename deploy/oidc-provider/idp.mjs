// A local OpenID Provider for tests and `make run`: the certified `oidc-provider` package (npm, pinned in
// package.json beside this file) with static users and groups, on loopback only.
//
//   node idp.mjs CONFIG.json
//
// CONFIG: {"port": 9400, "clients": [{client_id, client_secret, redirect_uris}],
//          "users": {"alice@acme.test": {"email_verified": true, "name": "Alice", "groups": ["mq-admins"]}}}
// Its login page (oidc-provider's development interactions) takes a user's address as the login; the
// password field is not checked: the IdP's own password policy is not what the control plane tests.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const port = Number(config.port);
const issuer = `http://127.0.0.1:${port}`;
const users = config.users || {};

const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    ...client,
  })),
  // The control plane reads the person from the ID token alone (no userinfo call): put the claims there.
  conformIdTokenClaims: false,
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const user = users[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: user.email || id, email_verified: user.email_verified !== false,
                 name: user.name || id, groups: user.groups || [] };
      },
    };
  },
  ttl: { Session: 600, Interaction: 600, Grant: 600, AuthorizationCode: 60, AccessToken: 600, IdToken: 600 },
});
provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
