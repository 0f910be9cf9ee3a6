import { DEFAULT_SERVICE_CONFIG } from '../service/config.js';
import type { Command } from './config.js';

const CONFIG_NOTE = `Configuration: flags, then environment variables, then the --config JSON file
(keys: port, host, store, idleTimeout, absoluteTimeout, secret, apiKeys), then defaults.
Relative SQLite paths are resolved against the working directory.`;

export const MAIN_HELP = `Usage: elastic-session <command> [options]

Session state shared by services in any language.

Commands:
  serve          Run the session service (HTTP JSON API, /metrics, /healthz, /openapi.json)
  inspect <id>   Print one session as JSON, as GET /v1/sessions/{id} shows it
  sweep          Remove expired sessions from a store without native expiry
  migrate        Create or upgrade the store's schema (PostgreSQL, MySQL) and print its version

Options:
  -h, --help     Show help (also: elastic-session <command> --help)
  --version      Show the version

Exit codes: 0 success, 1 failure (or session not found), 2 configuration error.
`;

export const COMMAND_HELP: Record<Command, string> = {
  serve: `Usage: elastic-session serve [options]

Runs the session service: a stateless HTTP JSON API over the session manager. Prints
"listening on http://HOST:PORT" on stdout once it accepts requests; SIGTERM or SIGINT stop
it gracefully (stop accepting, drain in-flight requests, close the store).

Options:
  --port <n>               Port, 0 picks a free one          [env ELASTIC_SESSION_PORT] (default ${DEFAULT_SERVICE_CONFIG.port})
  --host <addr>            Address to listen on              (default ${DEFAULT_SERVICE_CONFIG.host}; ${DEFAULT_SERVICE_CONFIG.hostWithApiKeys} with API keys)
  --store <url>            sqlite:PATH, memory:, postgres://, mysql://, memcached://
                                                            [env ELASTIC_SESSION_STORE] (default ${DEFAULT_SERVICE_CONFIG.store})
  --idle-timeout <s>       Seconds without activity before a session dies (default ${DEFAULT_SERVICE_CONFIG.idleTimeout})
  --absolute-timeout <s>   Seconds after creation before a session dies  (default ${DEFAULT_SERVICE_CONFIG.absoluteTimeout})
  --secret <text>          At least 32 bytes; keys the store-key hash    [env ELASTIC_SESSION_SECRET]
                           (default: generated on first start into elastic-session.secret next
                           to the SQLite file; prefer the environment over the command line)
  --api-key <key>          Bearer key required on /v1 routes; repeatable [env ELASTIC_SESSION_API_KEYS, comma-separated]
                           Without any key the service only listens on loopback.
  --config <file.json>     Read settings from a JSON file
  -h, --help               Show this help

${CONFIG_NOTE}
`,
  inspect: `Usage: elastic-session inspect [options] <id>

Prints the session with this ID as JSON (the shape of GET /v1/sessions/{id}), or exits 1 with
"not found" when it is unknown, expired or destroyed. Reads only: it does not move the idle
deadline. Pass "-" as the ID to read it from stdin (keeps it out of the shell history).

Options:
  --store <url>            sqlite:PATH, memory:, postgres://, mysql://, memcached://
                                                            [env ELASTIC_SESSION_STORE] (default ${DEFAULT_SERVICE_CONFIG.store})
  --secret <text>          The service's secret               [env ELASTIC_SESSION_SECRET]
                           (default: elastic-session.secret next to the SQLite file)
  --config <file.json>     Read settings from a JSON file
  -h, --help               Show this help

${CONFIG_NOTE}
`,
  sweep: `Usage: elastic-session sweep [options]

Removes expired sessions and dead tombstones from a store without native expiry (SQLite), in
batches of ${DEFAULT_SERVICE_CONFIG.sweepBatch} until a batch comes back short, and prints how many were removed.
The service also sweeps by itself every ${DEFAULT_SERVICE_CONFIG.sweepIntervalMs / 1000} seconds.

Options:
  --store <url>            sqlite:PATH, memory:, postgres://, mysql://, memcached://
                                                            [env ELASTIC_SESSION_STORE] (default ${DEFAULT_SERVICE_CONFIG.store})
  --config <file.json>     Read settings from a JSON file
  -h, --help               Show this help

${CONFIG_NOTE}
`,
  migrate: `Usage: elastic-session migrate [options]

Creates or upgrades the session tables of a SQL store to the version this release knows, and
prints "schema version FROM -> TO". Stores also migrate on first use unless told not to; run this
from a deploy step when the application's database user may not change the schema. Stores
without a schema (memory, memcached) and SQLite (migrated when it opens) report that.

Options:
  --store <url>            sqlite:PATH, memory:, postgres://, mysql://, memcached://
                                                            [env ELASTIC_SESSION_STORE] (default ${DEFAULT_SERVICE_CONFIG.store})
  --config <file.json>     Read settings from a JSON file
  -h, --help               Show this help

${CONFIG_NOTE}
`,
};
