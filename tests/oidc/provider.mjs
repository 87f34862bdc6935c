// A real, OpenID-certified authorization server (panva's oidc-provider) for
// tests/auth/test_oidc_provider.py, on loopback only. Started by tests/helpers/oidc.py:
//
//   OIDC_CLIENT_SECRET=... OIDC_INTROSPECTOR_SECRET=... node tests/oidc/provider.mjs \
//       --audience https://adminstats.example --audience https://other.example \
//       [--ttl 600] [--short-ttl 2]
//
// It listens on a free 127.0.0.1 port first, so the issuer (http://127.0.0.1:<port>) is
// known before the provider is built, then prints one JSON line on stdout (the issuer and
// the signing key ids). Tokens come from the client_credentials grant; the resource
// indicator (RFC 8707) picks what a token looks like: for each audience A,
//   A/jwt-rs256, A/jwt-es256   a JWT access token (RFC 9068) signed RS256 / ES256
//   A/opaque                   an opaque token, for introspection
//   A/short-jwt, A/short-opaque  the same with the --short-ttl lifetime
// and every one of them has the audience A and the scope admin:stats.
//
// POST /test/rotate (tests only) rotates the signing keys without a restart: a new
// provider takes over the same port and the same in-memory token store; its new keys sign
// from then on and the previous ones stay published in the JWKS, as in a real rotation.
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    audience: { type: 'string', multiple: true, default: [] },
    ttl: { type: 'string', default: '600' },
    'short-ttl': { type: 'string', default: '2' },
  },
});
const CLIENT_SECRET = process.env.OIDC_CLIENT_SECRET;
const INTROSPECTOR_SECRET = process.env.OIDC_INTROSPECTOR_SECRET;
if (!CLIENT_SECRET || !INTROSPECTOR_SECRET || args.audience.length === 0) {
  throw new Error('needs OIDC_CLIENT_SECRET, OIDC_INTROSPECTOR_SECRET and --audience');
}
const SCOPE = 'admin:stats';
const TTL = Number(args.ttl);
const SHORT_TTL = Number(args['short-ttl']);

const jwt = (alg) => ({ accessTokenFormat: 'jwt', jwt: { sign: { alg } } });
const opaque = { accessTokenFormat: 'opaque' };
const RESOURCES = {};
for (const audience of args.audience) {
  const kinds = {
    'jwt-rs256': jwt('RS256'),
    'jwt-es256': jwt('ES256'),
    opaque,
    'short-jwt': { ...jwt('RS256'), accessTokenTTL: SHORT_TTL },
    'short-opaque': { ...opaque, accessTokenTTL: SHORT_TTL },
  };
  for (const [kind, server] of Object.entries(kinds)) {
    RESOURCES[`${audience}/${kind}`] = { audience, scope: SCOPE, accessTokenTTL: TTL, ...server };
  }
}

let generation = 0;
const cookieKey = crypto.randomBytes(32).toString('hex');

function newKeys() {
  generation += 1;
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const tag = `g${generation}-${crypto.randomBytes(4).toString('hex')}`;
  return [
    { ...rsa.export({ format: 'jwk' }), kid: `rs256-${tag}`, alg: 'RS256', use: 'sig' },
    { ...ec.export({ format: 'jwk' }), kid: `es256-${tag}`, alg: 'ES256', use: 'sig' },
  ];
}

function configuration(keys) {
  return {
    clients: [
      {
        // The machine client the tests get tokens for (and revoke them with).
        client_id: 'adminstats-tests',
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: SCOPE,
      },
      {
        // The component's credentials: introspection only, it obtains no tokens.
        client_id: 'adminstats-component',
        client_secret: INTROSPECTOR_SECRET,
        grant_types: [],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys },
    cookies: { keys: [cookieKey] }, // unused (no browser flows); set so it does not warn
    scopes: [SCOPE],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo(_ctx, indicator) {
          const server = RESOURCES[indicator];
          if (!server) throw new errors.InvalidTarget();
          return server;
        },
      },
    },
    ttl: {
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? TTL,
    },
  };
}

// The http server stays; the provider behind it is replaced on rotation.
let keys = newKeys();
let provider;
let handler;

function build(issuer) {
  provider = new Provider(issuer, configuration(keys));
  handler = provider.callback();
}

function state() {
  return { issuer: provider.issuer, generation, kids: keys.slice(0, 2).map((k) => k.kid) };
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/test/rotate') {
    keys = [...newKeys(), ...keys.slice(0, 2)]; // new keys sign; the previous stay published
    build(provider.issuer);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(state()));
    return;
  }
  handler(req, res);
});

server.listen(0, '127.0.0.1', () => {
  build(`http://127.0.0.1:${server.address().port}`);
  process.stdout.write(`${JSON.stringify(state())}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
