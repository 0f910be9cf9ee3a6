import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { configError } from '../core/errors.js';
import { encodeEvent, eventOf } from './events.js';
import { decodeStreamEntry } from './redis-entry.js';
import { compareIds, evalScript, idTime, rangeAfter } from './redis-source.js';
import { lagWanted, publishFailed, publishLag, publishRelayed } from './telemetry.js';

/**
 * The relay from the change log to the events stream: each entry's lifecycle event (if it has
 * one) becomes one stream entry with the single field `event` holding its JSON.
 *
 * Idempotent and safe to run on several instances at once: the relay's position is a
 * checkpoint key beside the events stream (`<events>:relayed`, the last change-log ID done),
 * and one script appends a batch's events and moves the checkpoint only if it still is where
 * the batch began. A relay killed at any point either wrote a whole batch and its checkpoint or
 * nothing; a relay that lost the race reads again from the new checkpoint. Events are written in
 * change-log order, so each session's events keep their order.
 */

export interface EventRelayOptions {
  /** A client for the change log's server. Blocking reads go over a duplicate, closed by `close()`. */
  from: Redis;
  /** The change-log stream. */
  stream: string;
  /** A client for the events stream's server. @default from */
  to?: Redis;
  /** The events stream. */
  events: string;
  /** Change-log entries per batch. @default 500 */
  batch?: number;
  /** How long `run` waits for new entries before looking again. @default 5000 */
  blockMs?: number;
  /** Events older than this are trimmed as new ones are written (0: never). @default 604800000 (7 days) */
  maxAgeMs?: number;
}

export const EVENT_RELAY_DEFAULTS = { batch: 500, blockMs: 5_000, maxAgeMs: 7 * 24 * 3600 * 1000 } as const;

/**
 * KEYS[1] events stream, KEYS[2] checkpoint. ARGV: expected checkpoint ("" none), new
 * checkpoint, maxAgeMs, then the events' JSON. Returns {1, appended} or {0, current checkpoint}.
 */
const RELAY_LUA = `
local current = redis.call('GET', KEYS[2]) or ''
if current ~= ARGV[1] then return {0, current} end
local maxAge = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 4, #ARGV do
  if maxAge > 0 then
    redis.call('XADD', KEYS[1], 'MINID', '~', string.format('%.0f', now - maxAge), '*', 'event', ARGV[i])
  else
    redis.call('XADD', KEYS[1], '*', 'event', ARGV[i])
  end
end
redis.call('SET', KEYS[2], ARGV[2])
return {1, #ARGV - 3}
`;
const RELAY_SCRIPT = { lua: RELAY_LUA, sha: createHash('sha1').update(RELAY_LUA).digest('hex') };

export interface RelayRound {
  /** Change-log entries read. */
  entries: number;
  /** Events appended. */
  events: number;
}

export class EventRelay {
  readonly stream: string;
  readonly events: string;
  readonly #from: Redis;
  readonly #to: Redis;
  readonly #checkpoint: string;
  readonly #batch: number;
  readonly #blockMs: number;
  readonly #maxAgeMs: number;
  #blocking: Redis | null = null;
  #trimmedSeen = '0-0';

  constructor(options: EventRelayOptions) {
    const { from, stream, events } = options;
    if (!from || typeof from.xrange !== 'function') throw configError('from', 'an ioredis Redis instance is required');
    if (typeof stream !== 'string' || stream.length === 0) throw configError('stream', 'must be a non-empty string');
    if (typeof events !== 'string' || events.length === 0) throw configError('events', 'must be a non-empty string');
    const to = options.to ?? from;
    if (events === stream && to === from) throw configError('events', 'must be another stream than the change log');
    this.#from = from;
    this.#to = to;
    this.stream = stream;
    this.events = events;
    this.#checkpoint = `${events}:relayed`;
    this.#batch = integer(options.batch ?? EVENT_RELAY_DEFAULTS.batch, 'batch', 1);
    this.#blockMs = integer(options.blockMs ?? EVENT_RELAY_DEFAULTS.blockMs, 'blockMs', 1);
    this.#maxAgeMs = integer(options.maxAgeMs ?? EVENT_RELAY_DEFAULTS.maxAgeMs, 'maxAgeMs', 0);
  }

  /** The last change-log ID relayed, or null before the first batch. */
  async position(): Promise<string | null> {
    return this.#to.get(this.#checkpoint);
  }

  /** Relays one batch of entries after the checkpoint. */
  async relayOnce(): Promise<RelayRound> {
    for (;;) {
      const checkpoint = await this.position();
      const raw = await rangeAfter(this.#from, this.stream, checkpoint, this.#batch);
      if (checkpoint !== null) await this.#checkTrimmed(checkpoint);
      if (raw.length === 0) {
        if (lagWanted()) publishLag('redis-streams', 'relay', 0, 0);
        return { entries: 0, events: 0 };
      }
      const lines: string[] = [];
      for (const [streamId, fields] of raw) {
        try {
          const event = eventOf(decodeStreamEntry(fields, streamId));
          if (event !== null) lines.push(encodeEvent(event));
        } catch {
          publishFailed('redis-streams', 'decode');
        }
      }
      const last = raw[raw.length - 1]?.[0] as string;
      const [done, appended] = (await evalScript(this.#to, RELAY_SCRIPT, [this.events, this.#checkpoint], [checkpoint ?? '', last, this.#maxAgeMs, ...lines])) as [number, number | string];
      // Another relay moved the checkpoint first: read again from where it left off.
      if (done !== 1) continue;
      publishRelayed('redis-streams', Number(appended));
      if (lagWanted()) await this.#publishLag(last);
      return { entries: raw.length, events: Number(appended) };
    }
  }

  /**
   * Relays until `signal` aborts: batch after batch, then waits (`XREAD BLOCK`) for entries
   * after the checkpoint. Errors end the loop; running it again resumes from the checkpoint.
   */
  async run(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    const stop = () => {
      this.#blocking?.disconnect();
      this.#blocking = null;
    };
    signal?.addEventListener('abort', stop, { once: true });
    try {
      while (!signal?.aborted) {
        try {
          const { entries } = await this.relayOnce();
          if (entries === 0) await this.#waitForEntries();
        } catch (error) {
          if (signal?.aborted) return;
          throw error;
        }
      }
    } finally {
      signal?.removeEventListener('abort', stop);
    }
  }

  /** Closes the blocking connection (the clients passed in stay open). */
  close(): void {
    this.#blocking?.disconnect();
    this.#blocking = null;
  }

  async #waitForEntries(): Promise<void> {
    if (this.#blocking === null) {
      this.#blocking = this.#from.duplicate({ commandTimeout: this.#blockMs + 5_000 });
      this.#blocking.on('error', () => {});
    }
    const after = (await this.position()) ?? '0-0';
    await this.#blocking.call('XREAD', 'COUNT', 1, 'BLOCK', this.#blockMs, 'STREAMS', this.stream, after);
  }

  /** Entries trimmed by age before the relay read them are lost to the events stream: counted, once. */
  async #checkTrimmed(checkpoint: string): Promise<void> {
    let info: unknown[];
    try {
      info = (await this.#from.call('XINFO', 'STREAM', this.stream)) as unknown[];
    } catch {
      return;
    }
    const index = info.indexOf('max-deleted-entry-id');
    const deleted = index < 0 ? undefined : String(info[index + 1]);
    if (deleted === undefined || compareIds(deleted, checkpoint) <= 0 || compareIds(deleted, this.#trimmedSeen) <= 0) return;
    this.#trimmedSeen = deleted;
    publishFailed('redis-streams', 'trimmed');
  }

  /** The age of the oldest entry not relayed yet (how many there are would cost a walk: null). */
  async #publishLag(last: string): Promise<void> {
    const [next] = await rangeAfter(this.#from, this.stream, last, 1);
    if (next === undefined) publishLag('redis-streams', 'relay', 0, 0);
    else publishLag('redis-streams', 'relay', null, Math.max(0, Date.now() - idTime(next[0])));
  }
}

function integer(value: number, name: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw configError(name, min === 0 ? 'must be a non-negative integer' : 'must be a positive integer');
  return value;
}
