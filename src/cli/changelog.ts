import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { encodeEvent, eventOf } from '../changelog/events.js';
import { decodeStreamEntry, isChangeLogEntry } from '../changelog/redis-entry.js';
import type { RawStreamEntry } from '../changelog/redis-source.js';
import { fieldOf, idAtOrAfter, openStreamUrl, parseStreamUrl, rangeAfter } from '../changelog/redis-source.js';
import { replay } from '../changelog/replay.js';
import { configError, SessionError } from '../core/errors.js';
import type { SessionStore } from '../core/types.js';
import { openStore, parseStoreUrl, redactStoreUrl } from '../service/stores.js';
import type { CliIO } from './run.js';

/**
 * `elastic-session events` and `elastic-session replay`: the change log from the command line
 * (docs/change-log.md). Each takes the arguments after its name and the CLI's IO, and resolves
 * with the exit code: 0 success, 1 failure, 2 configuration error.
 */

const EXIT = { ok: 0, failure: 1, config: 2 } as const;
const PAGE = 1_000;
const FOLLOW_BLOCK_MS = 5_000;

export const EVENTS_HELP = `Usage: elastic-session events --from <url> [--since <time>] [--follow]

Prints lifecycle events as JSON lines, one object each:
  {"id", "type", "at", "region", "handle", "userId", "fields", "reason"} (+ "previousHandle")
From an events stream (entries with the field "event", written by the relay) or straight from a
change-log stream (entries with the field "entry"; their events are derived here).

Options:
  --from <url>     redis://host:port[/db]?stream=NAME (rediss:// for TLS; redis-sentinel://...)
  --since <time>   start at the first entry written at or after this ISO-8601 time
  --follow         keep printing new events until interrupted (Ctrl-C)
  -h, --help       Show this help

Exit codes: 0 success, 1 failure, 2 configuration error.
`;

export const REPLAY_HELP = `Usage: elastic-session replay --from <url> --store <url> [--since <time>]

Rebuilds a store from the change log: every entry's state is merged into the store (mergeState,
mergeWatermark), so it is safe over a live or partly filled store and may run twice. Field values
move as the change log holds them (ciphertext under encryption). Prints what it applied as JSON:
  {"entries", "merged", "changed", "watermarks", "revoked", "skipped", "malformed", "first", "last"}

Options:
  --from <url>     the change-log stream: redis://host:port[/db]?stream=NAME
  --store <url>    the store to merge into (any store URL of "serve" whose store has the replica powers)
  --since <time>   start at the first entry written at or after this ISO-8601 time
  -h, --help       Show this help

Exit codes: 0 success, 1 failure, 2 configuration error.
`;

/** Dispatches `events` or `replay`. */
export async function runChangeLogCommand(command: 'events' | 'replay', argv: readonly string[], io: CliIO): Promise<number> {
  return command === 'events' ? eventsCommand(argv, io) : replayCommand(argv, io);
}

export async function eventsCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return guarded('events', io, async () => {
    const { values } = parse(argv, { from: { type: 'string' }, since: { type: 'string' }, follow: { type: 'boolean' } });
    if (values.help === true) {
      io.stdout(EVENTS_HELP);
      return EXIT.ok;
    }
    const url = required(values.from, 'from');
    parseStreamUrl(url, '--from');
    const start = values.since === undefined ? '-' : idAtOrAfter(String(values.since), '--since');
    const source = await openStreamUrl(url, '--from');
    try {
      let after: string | null = null;
      for (;;) {
        const page = await rangeAfter(source.client, source.stream, after, PAGE, start);
        print(page, io);
        if (page.length > 0) after = page[page.length - 1]?.[0] as string;
        if (page.length < PAGE) break;
      }
      if (values.follow === true) await follow(source.client, source.stream, after ?? (start === '-' ? '0-0' : previousId(start)), io);
      return EXIT.ok;
    } finally {
      await source.close();
    }
  });
}

export async function replayCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return guarded('replay', io, async () => {
    const { values } = parse(argv, { from: { type: 'string' }, store: { type: 'string' }, since: { type: 'string' } });
    if (values.help === true) {
      io.stdout(REPLAY_HELP);
      return EXIT.ok;
    }
    const url = required(values.from, 'from');
    parseStreamUrl(url, '--from');
    const spec = parseStoreUrl(required(values.store, 'store'), '--store', io.cwd);
    const since = values.since === undefined ? undefined : String(values.since);
    if (since !== undefined) idAtOrAfter(since, '--since');
    const source = await openStreamUrl(url, '--from');
    let store: SessionStore | undefined;
    try {
      store = await openStore(spec);
      const report = await replay(source, store, {
        ...(since === undefined ? {} : { since }),
        onProgress: (progress) => io.stderr(`elastic-session: replayed ${progress.entries} entries (${progress.changed} changed the store)\n`),
      });
      io.stdout(`${JSON.stringify(report)}\n`);
      return EXIT.ok;
    } catch (error) {
      if (error instanceof SessionError && error.code === 'ESESS_UNSUPPORTED') {
        io.stderr(`elastic-session replay: ${error.message} (${redactStoreUrl(spec.url)})\n`);
        return EXIT.failure;
      }
      throw error;
    } finally {
      await store?.close();
      await source.close();
    }
  });
}

/** Prints the events of a page of stream entries (events or change-log entries). */
function print(page: RawStreamEntry[], io: CliIO): void {
  let lines = '';
  for (const [streamId, fields] of page) {
    const event = fieldOf(fields, 'event');
    if (event !== undefined) {
      lines += `${event}\n`;
      continue;
    }
    if (!isChangeLogEntry(fields)) continue;
    try {
      const derived = eventOf(decodeStreamEntry(fields, streamId));
      if (derived !== null) lines += `${encodeEvent(derived)}\n`;
    } catch {
      io.stderr('elastic-session events: skipped a malformed change-log entry\n');
    }
  }
  if (lines !== '') io.stdout(lines);
}

/** New entries after `after` until the process is asked to stop. */
async function follow(client: Redis, stream: string, after: string, io: CliIO): Promise<void> {
  const blocking = client.duplicate({ commandTimeout: FOLLOW_BLOCK_MS + 5_000 });
  blocking.on('error', () => {});
  let stopped = false;
  void io.waitForStop().then(() => {
    stopped = true;
    blocking.disconnect();
  });
  let last = after;
  try {
    while (!stopped) {
      let reply: [string, RawStreamEntry[]][] | null;
      try {
        reply = (await blocking.call('XREAD', 'COUNT', PAGE, 'BLOCK', FOLLOW_BLOCK_MS, 'STREAMS', stream, last)) as [string, RawStreamEntry[]][] | null;
      } catch (error) {
        if (stopped) return;
        throw error;
      }
      const page = reply?.[0]?.[1] ?? [];
      print(page, io);
      if (page.length > 0) last = page[page.length - 1]?.[0] as string;
    }
  } finally {
    blocking.disconnect();
  }
}

/** The ID just before `<ms>-0`, for XREAD (which reads after an ID). */
function previousId(id: string): string {
  const ms = Number(id.split('-')[0]);
  return ms > 0 ? `${ms - 1}-18446744073709551615` : '0-0';
}

type Flags = Record<string, { type: 'string' | 'boolean' }>;

function parse(argv: readonly string[], flags: Flags): { values: Record<string, string | boolean | undefined> } {
  try {
    const { values } = parseArgs({ args: [...argv], options: { ...flags, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
    return { values: values as Record<string, string | boolean | undefined> };
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] ?? '' : String(error);
    throw new SessionError('ESESS_CONFIG', { message: message.replace(/\. To specify a positional argument.*$/, ''), context: { option: 'argv' } });
  }
}

function required(value: string | boolean | undefined, flag: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw configError(`--${flag}`, 'is required');
  return value.trim();
}

async function guarded(command: string, io: CliIO, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof SessionError && error.code === 'ESESS_CONFIG') {
      io.stderr(`elastic-session ${command}: ${error.message}\nRun "elastic-session ${command} --help" for the options.\n`);
      return EXIT.config;
    }
    const text = error instanceof Error ? error.message : String(error);
    const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
    io.stderr(`elastic-session ${command}: ${text}${typeof code === 'string' ? ` (${code})` : ''}\n`);
    return EXIT.failure;
  }
}
