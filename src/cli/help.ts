import { DEFAULT_SERVICE_CONFIG } from '../service/config.js';
import { COMMAND_SETTINGS, COMMANDS, SETTINGS } from './config.js';
import type { Command, Setting, SettingInfo } from './config.js';

const STORE_OPTION = `  --store <url>            sqlite:PATH, memory:, redis://, postgres://, mysql://, memcached://,
                           nats://                          [env ELASTIC_SESSION_STORE] (default ${DEFAULT_SERVICE_CONFIG.store})`;

const SECRET_OPTIONS = `  --secret <text>          The service's secret(s)            [env ELASTIC_SESSION_SECRET]
                           (default: elastic-session.secret next to the SQLite file)
  --secret-file <file>     ... read from this file, one per line [env ELASTIC_SESSION_SECRET_FILE]
  --hash-key <KEY>         The service's store-key hash key, if it has one
                                                            [env ELASTIC_SESSION_HASH_KEY]
  --hash-key-file <file>   ... read from this file               [env ELASTIC_SESSION_HASH_KEY_FILE]`;

/** Wraps words into lines of at most `width` characters. */
function wrap(words: readonly string[], width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line !== '' && line.length + word.length + 1 > width) {
      lines.push(line);
      line = '';
    }
    line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** The configuration paragraph of a command's help: only the config-file keys that command reads. */
export function configNote(command: Command): string {
  const keys = COMMAND_SETTINGS[command].map((setting, index, all) => `${setting}${index < all.length - 1 ? ',' : ''}`);
  return [
    ...wrap(['Configuration:', 'flags,', 'then', 'environment', 'variables,', 'then', 'the', '--config', 'JSON', 'file', `(keys:`, ...keys.slice(0, -1), `${keys.at(-1) ?? ''}),`, 'then', 'defaults.'], 96),
    'Relative paths are resolved against the working directory.',
  ].join('\n');
}

function flagLine({ flag, arg, env, list, summary }: SettingInfo): string {
  const name = `    --${flag}${arg === undefined ? '' : ` ${arg}`}`;
  const notes = [list ? 'repeatable' : '', env === undefined ? '' : `env ${env}`].filter((note) => note !== '').join(', ');
  const line = `${name.padEnd(34)} ${summary}`;
  if (notes === '') return line;
  return line.length + notes.length + 3 <= 100 ? `${line} [${notes}]` : `${line}\n${' '.repeat(35)}[${notes}]`;
}

/** Every flag, grouped by the commands that take it (generated, so it cannot miss one). */
function allFlags(): string {
  const groups = new Map<string, Setting[]>();
  for (const setting of Object.keys(SETTINGS) as Setting[]) {
    const commands = COMMANDS.filter((command) => COMMAND_SETTINGS[command].includes(setting)).join(', ');
    groups.set(commands, [...(groups.get(commands) ?? []), setting]);
  }
  const sections = [...groups].sort(([a], [b]) => b.split(',').length - a.split(',').length);
  return sections.map(([commands, settings]) => [`  ${commands}:`, ...settings.map((setting) => flagLine(SETTINGS[setting]))].join('\n')).join('\n');
}

export const MAIN_HELP = `Usage: elastic-session <command> [options]

Session state shared by services in any language.

Commands:
  serve          Run the session service (HTTP JSON API, /metrics, /healthz, /openapi.json)
  inspect <id>   Print one session as JSON, as GET /v1/sessions/{id} shows it
  sweep          Remove expired sessions from a store without native expiry
  migrate        Create or upgrade the store's schema (PostgreSQL, MySQL) and print its version
  reencrypt      Re-encrypt every session under the newest encryption key (after a key rotation)
  hash-key       Print the store-key hash key in use, to pin with --hash-key before rotating the secret
  events         Print session lifecycle events (from a change log or events stream) as JSON lines
  replay         Rebuild a store from a change log by merging (safe over a live store)

Options:
  -h, --help     Show help (also: elastic-session <command> --help)
  --version      Show the version

Options of the commands (elastic-session <command> --help explains each):
  every command:
    --config <file.json>           Read settings from a JSON file (keys: the settings in camelCase)
${allFlags()}

Exit codes: 0 success, 1 failure (or session not found), 2 configuration error.
`;

export const COMMAND_HELP: Record<Command, string> = {
  serve: `Usage: elastic-session serve [options]

Runs the session service: a stateless HTTP JSON API over the session manager. Prints
"listening on http://HOST:PORT" on stdout once it accepts requests; SIGTERM or SIGINT stop
it gracefully (stop accepting, drain in-flight requests, close the store).

Options:
  --port <n>               Port, 0 picks a free one          [env ELASTIC_SESSION_PORT] (default ${DEFAULT_SERVICE_CONFIG.port})
  --host <addr>            Address to listen on (default ${DEFAULT_SERVICE_CONFIG.host}, with or without API keys;
                           0.0.0.0 or :: for every interface, which needs --api-key)
  --allowed-host <name[:port]>  A name the service answers to besides its listen address;
                           repeatable. Requests whose Host is another name answer 421 (DNS
                           rebinding). Checked always without API keys (loopback answers to
                           localhost, 127.0.0.1 and [::1]); with keys only when given
                                                            [env ELASTIC_SESSION_ALLOWED_HOSTS, comma-separated]
${STORE_OPTION}
  --idle-timeout <s>       Seconds without activity before a session dies (default ${DEFAULT_SERVICE_CONFIG.idleTimeout})
  --absolute-timeout <s>   Seconds after creation before a session dies  (default ${DEFAULT_SERVICE_CONFIG.absoluteTimeout})
  --secret <text>          At least 32 bytes; repeatable, newest first: the first signs tokens,
                           all verify them. Without --hash-key it also keys the store-key hash,
                           and changing it ends every session      [env ELASTIC_SESSION_SECRET,
                           comma-separated] (default: generated on first start into
                           elastic-session.secret next to the SQLite file; prefer a file or
                           the environment over the command line, which ps shows)
  --secret-file <file>     Read the secret(s) from a file, one per line, newest first
                                                            [env ELASTIC_SESSION_SECRET_FILE]
  --hash-key <KEY>         The store-key hash key, 32 bytes in base64url; set once, never change
                           it; required with several secrets     [env ELASTIC_SESSION_HASH_KEY]
                           (default: derived from the only secret; see "elastic-session hash-key")
  --hash-key-file <file>   Read the hash key from a file          [env ELASTIC_SESSION_HASH_KEY_FILE]
  --api-key <key>          Bearer key required on /v1, /admin/api and /metrics; repeatable
                                                            [env ELASTIC_SESSION_API_KEYS, comma-separated]
                           Without any key the service only listens on loopback.
  --api-key-file <file>    Read the API keys from a file, one per line [env ELASTIC_SESSION_API_KEYS_FILE]
  --public-metrics         Serve /metrics without an API key     [env ELASTIC_SESSION_PUBLIC_METRICS=1]
  --encryption-key <kid:KEY>  Encrypt session contents at rest (AES-256-GCM); KEY is 32 bytes in
                           base64url; repeatable, newest first (the first encrypts, all decrypt)
                                                            [env ELASTIC_SESSION_ENCRYPTION_KEYS, comma-separated]
  --tls-cert <file.pem>    Serve HTTPS with this certificate chain   [env ELASTIC_SESSION_TLS_CERT]
  --tls-key <file.pem>     ... and this private key                  [env ELASTIC_SESSION_TLS_KEY]
  --tls-client-ca <file.pem>  Require client certificates signed by this CA (mTLS)
                                                            [env ELASTIC_SESSION_TLS_CLIENT_CA]
  --token-issuer <text>    iss of access tokens                (default elastic-session)
  --token-audience <text>  aud of access tokens                (default elastic-session)
  --access-token-ttl <s>   Access token lifetime, at most 3600 (default 300)
  --refresh-token-ttl <s>  Refresh token lifetime               (default 86400; never past the session's end)
  --token-key <file.pem>   Sign tokens with this PEM private key: Ed25519 (EdDSA) or P-256 (ES256)
                                                            [env ELASTIC_SESSION_TOKEN_KEY]
                           (default: an Ed25519 key derived from the secret)
  --max-sessions-per-user <n>  Most live sessions one user may have (needs a store with a user
                           index)                  [env ELASTIC_SESSION_MAX_SESSIONS_PER_USER]
  --on-too-many-sessions evict-oldest|refuse  Beyond that: end the user's oldest session, or
                           refuse the login with 409 (default evict-oldest)
                                                            [env ELASTIC_SESSION_ON_TOO_MANY_SESSIONS]
  --near-cache <entries>   An in-process near-cache of this many sessions in front of the store
                           (Redis standalone or Sentinel: other instances' writes invalidate it
                           by client tracking)                 [env ELASTIC_SESSION_NEAR_CACHE]
  --config <file.json>     Read settings from a JSON file
  -h, --help               Show this help

Files given to --secret-file, --api-key-file and --hash-key-file: line endings are dropped and
blank lines skipped; a file every user may write is refused, one every user may read is taken
with a warning.

Token mode (/v1/sessions/{id}/tokens, /v1/tokens/refresh, /verify, /revoke) signs with an
Ed25519 key derived from the secret: every instance with the same secret verifies the same tokens.
With --token-key the key comes from that file instead (give every instance the same one); the
secret's key then only verifies the tokens it signed before, until they expire.

${configNote('serve')}
`,
  inspect: `Usage: elastic-session inspect [options] <id>

Prints the session with this ID as JSON (the shape of GET /v1/sessions/{id}), or exits 1 with
"not found" when it is unknown, expired or destroyed. Reads only: it does not move the idle
deadline. Pass "-" as the ID to read it from stdin (keeps it out of the shell history); an ID
that starts with "-" goes after "--" (elastic-session inspect -- -Xy...).

Options:
${STORE_OPTION}
${SECRET_OPTIONS}
  --encryption-key <kid:KEY>  The service's encryption keys, if it encrypts at rest; repeatable
                                                            [env ELASTIC_SESSION_ENCRYPTION_KEYS]
  --config <file.json>     Read settings from a JSON file
  -h, --help               Show this help

${configNote('inspect')}
`,
  sweep: `Usage: elastic-session sweep [options]

Removes expired sessions and dead tombstones from a store without native expiry (SQLite,
PostgreSQL, MySQL, NATS), in batches of ${DEFAULT_SERVICE_CONFIG.sweepBatch} until a batch comes back short, and prints how
many were removed.
The service also sweeps by itself every ${DEFAULT_SERVICE_CONFIG.sweepIntervalMs / 1000} seconds. A store that expires sessions by itself
(Redis, Memcached: native TTL) needs no sweep: sweep says so, prints no count and exits 0.

Options:
${STORE_OPTION}
  --config <file.json>     Read settings from a JSON file
  -h, --help               Show this help

${configNote('sweep')}
`,
  migrate: `Usage: elastic-session migrate [options]

Creates or upgrades the session tables of a SQL store to the version this release knows, and
prints "schema version FROM -> TO". Stores also migrate on first use unless told not to; run this
from a deploy step when the application's database user may not change the schema. Stores
without a schema (memory, memcached) and SQLite (migrated when it opens) report that.

Options:
${STORE_OPTION}
  --config <file.json>     Read settings from a JSON file
  -h, --help               Show this help

${configNote('migrate')}
`,
  reencrypt: `Usage: elastic-session reencrypt [options]

After a key rotation (a new key prepended to --encryption-key), re-encrypts under the new key
every value an older key sealed, walking the store in batches of ${DEFAULT_SERVICE_CONFIG.sweepBatch}, and walks again until a
walk finds nothing left (at most 3 walks). Safe while the service runs: a rewrite never
overwrites a newer write. Prints progress on stderr and
{"scanned","rewritten","fields","passes","clean","keyId"} on stdout. Exit 0 (clean: the old key
can be removed) or 1 (old-key values kept appearing: is every instance on the new key?).
Walks memory, SQLite, PostgreSQL, MySQL, NATS, Redis (a walk refuses to end across a failover or
a resharding: run it again after) and Memcached (a dump of its keys; not with SASL).

Options:
${STORE_OPTION}
  --encryption-key <kid:KEY>  The new key first, then every key still in use; repeatable
                                                            [env ELASTIC_SESSION_ENCRYPTION_KEYS, comma-separated]
  --config <file.json>     Read settings from a JSON file
  -h, --help               Show this help

${configNote('reencrypt')}
`,
  'hash-key': `Usage: elastic-session hash-key [options]

Prints the key the service hashes store keys with (32 bytes in base64url): the --hash-key given,
else the key derived from the only secret. Sessions are found by it, so it must not change while
they live. To rotate the secret without ending sessions, pin it first:

  ELASTIC_SESSION_HASH_KEY=$(elastic-session hash-key)   # with the current secret
  ELASTIC_SESSION_SECRET=NEW,OLD                          # the new secret signs, the old verifies

then drop OLD once the access tokens it signed have expired. The key is a secret: keep it out of
logs and shell history.

Options:
${STORE_OPTION}
${SECRET_OPTIONS}
  --config <file.json>     Read settings from a JSON file
  -h, --help               Show this help

${configNote('hash-key')}
`,
};
