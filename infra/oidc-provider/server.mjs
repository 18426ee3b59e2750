// A real OpenID provider for Attendwise's SSO tests, on loopback only.
//
// Configured from the environment by the pytest fixture (tests/platform/oidc_provider.py):
//   OIDC_PORT            port to listen on (127.0.0.1)
//   OIDC_CLIENT_ID       the one registered client
//   OIDC_CLIENT_SECRET
//   OIDC_REDIRECT_URI    the client's callback
//   OIDC_POST_LOGOUT_URI where the provider returns after RP-initiated sign-out
//   OIDC_USERS           JSON: {"login": {"email": "...", "name": "..."}, ...}
//
// Authorization code flow with PKCE (S256) required, RS256 ID tokens signed by a key made at
// start-up, the scope's claims in the ID token (no userinfo needed), development interactions
// for the sign-in page (any password), consent granted for the one client, and
// RP-initiated logout. Prints "listening <issuer>" once it accepts connections.
import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import Provider from "oidc-provider";

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`missing ${name}`);
    process.exit(2);
  }
  return value;
};

const port = Number(env("OIDC_PORT"));
const issuer = `http://127.0.0.1:${port}`;
const users = JSON.parse(env("OIDC_USERS"));

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: "jwk" }), kid: randomUUID(), use: "sig", alg: "RS256" };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: env("OIDC_CLIENT_ID"),
      client_secret: env("OIDC_CLIENT_SECRET"),
      redirect_uris: [env("OIDC_REDIRECT_URI")],
      post_logout_redirect_uris: [env("OIDC_POST_LOGOUT_URI")],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  pkce: { required: () => true },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  async findAccount(ctx, id) {
    const user = users[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: user.email, email_verified: true, name: user.name };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grant = new provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid email profile");
    await grant.save();
    return grant;
  },
});

provider.listen(port, "127.0.0.1", () => {
  console.log(`listening ${issuer}`);
});
