// node-oidc-provider as a client-credentials token server, for bench/bench_peers.py.
//
// One confidential client (client_secret_basic), the client_credentials grant, and JWT access
// tokens (RFC 9068, `typ: at+jwt`) for one resource server through features.resourceIndicators,
// signed with one key of the chosen algorithm. JWT access tokens are not stored, so the
// in-memory adapter does nothing on the token path. With WORKERS > 1 the primary generates the
// key once and forks that many node:cluster workers (node's default round-robin distribution),
// so every worker signs with the key the JWKS publishes.
//
// Env (all set by bench_peers.py):
//   PORT            TCP port on 127.0.0.1 (required)
//   ALG             ES256 | RS256 (default ES256)
//   WORKERS         1 = one process; N > 1 = node:cluster primary + N workers (default 1)
//   CLIENT_ID       the client's id (required)
//   CLIENT_SECRET   its secret (required; node-oidc-provider compares it in constant time)
//   SCOPE           the scope the client may ask for (default "read")
//   AUDIENCE        the resource server's identifier, the tokens' `aud`
//   TOKEN_TTL       access-token lifetime in seconds (default 900, as tokenward's default)
//
// Run from this directory after `npm ci`:  NODE_ENV=production node node_oidc_server.mjs
import cluster from 'node:cluster';
import * as crypto from 'node:crypto';
import process from 'node:process';

import Provider from 'oidc-provider';

const PORT = Number(required('PORT'));
const ALG = process.env.ALG || 'ES256';
const WORKERS = Number(process.env.WORKERS || '1');
const CLIENT_ID = required('CLIENT_ID');
const CLIENT_SECRET = required('CLIENT_SECRET');
const SCOPE = process.env.SCOPE || 'read';
const AUDIENCE = process.env.AUDIENCE || 'https://api.bench.test';
const TOKEN_TTL = Number(process.env.TOKEN_TTL || '900');

if (!['ES256', 'RS256'].includes(ALG)) fail(`ALG must be ES256 or RS256, not ${ALG}`);
if (!Number.isInteger(WORKERS) || WORKERS < 1) fail(`WORKERS must be a positive integer`);

if (cluster.isPrimary && WORKERS > 1) {
  process.env.TW_PEER_JWKS = JSON.stringify(makeJwks(ALG));
  for (let i = 0; i < WORKERS; i += 1) cluster.fork();
  // A worker that dies is a failed benchmark, not something to hide by forking another.
  cluster.on('exit', (worker, code, signal) => {
    console.error(`worker ${worker.process.pid} exited (${signal || code}); stopping`);
    process.exit(1);
  });
} else {
  const jwks = process.env.TW_PEER_JWKS ? JSON.parse(process.env.TW_PEER_JWKS) : makeJwks(ALG);
  serve(jwks);
}

function serve(jwks) {
  const provider = new Provider(`http://127.0.0.1:${PORT}`, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        // Only the one key of ALG exists: the (unused) ID-token default must match it.
        id_token_signed_response_alg: ALG,
        scope: SCOPE,
      },
    ],
    jwks,
    scopes: [SCOPE],
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    ttl: { ClientCredentials: TOKEN_TTL },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: SCOPE,
          audience: AUDIENCE,
          accessTokenTTL: TOKEN_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: ALG } },
        }),
      },
    },
  });
  provider.proxy = false;
  provider.listen(PORT, '127.0.0.1', () => {
    console.log(`node-oidc-provider pid ${process.pid} listening on 127.0.0.1:${PORT} alg=${ALG}`);
  });
}

// One private signing key of `alg` as a JWKS (the provider publishes its public half).
function makeJwks(alg) {
  const pair = alg === 'RS256'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = pair.privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: `bench-${alg.toLowerCase()}`, alg, use: 'sig' }] };
}

function required(name) {
  const value = process.env[name];
  if (!value) fail(`${name} is not set`);
  return value;
}

function fail(message) {
  console.error(`node_oidc_server.mjs: ${message}`);
  process.exit(2);
}
