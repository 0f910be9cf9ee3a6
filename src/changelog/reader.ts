import type { Redis } from 'ioredis';
import { configError } from '../core/errors.js';
import type { ChangeEntry } from './entry.js';
import { decodeStreamEntry } from './redis-entry.js';
import type { RawStreamEntry } from './redis-source.js';
import { compareIds, idTime } from './redis-source.js';
import { lagWanted, publishFailed, publishLag } from './telemetry.js';

/**
 * A consumer of the change log through a Redis consumer group: at-least-once. Entries are
 * acknowledged (`XACK`) only after the handler resolved; a consumer that crashed reads its own
 * pending entries again when it starts under the same name, and pending entries of a consumer
 * gone for `claimIdleMs` are claimed (`XAUTOCLAIM`) by the others. Handlers must therefore be
 * idempotent — merging an entry's state (`mergeState`) is.
 */

export interface ChangeLogReaderOptions {
  /** A client for the stream's server. Blocking reads go over a duplicate of it, closed by `close()`. */
  client: Redis;
  stream: string;
  group: string;
  /** This consumer's name: stable across restarts, so its pending entries are read again. */
  consumer: string;
  /** Entries per read. @default 100 */
  count?: number;
  /** How long a read waits for new entries. @default 5000 */
  blockMs?: number;
  /** Pending entries of other consumers idle this long are claimed. @default 60000 */
  claimIdleMs?: number;
  /** Where a group that does not exist yet starts: "0" the oldest entry kept, "$" new entries only. @default "0" */
  start?: '0' | '$';
}

export const CHANGE_LOG_READER_DEFAULTS = { count: 100, blockMs: 5_000, claimIdleMs: 60_000, start: '0' } as const;

/** An entry as read: its stream ID (what `ack` takes) and the entry. */
export interface ReadEntry {
  streamId: string;
  entry: ChangeEntry;
}

export class ChangeLogReader {
  readonly stream: string;
  readonly group: string;
  readonly consumer: string;
  readonly #client: Redis;
  readonly #count: number;
  readonly #blockMs: number;
  readonly #claimIdleMs: number;
  readonly #start: '0' | '$';
  #blocking: Redis | null = null;
  #groupReady = false;
  /** Own pending entries are read from here until none is left; then only new ones. */
  #pendingCursor: string | null = '0';
  #claimCursor = '0-0';
  #lastClaim = 0;
  #closed = false;

  constructor(options: ChangeLogReaderOptions) {
    const { client, stream, group, consumer } = options;
    if (!client || typeof client.xreadgroup !== 'function') throw configError('client', 'an ioredis Redis instance is required');
    for (const [name, value] of [['stream', stream], ['group', group], ['consumer', consumer]] as const) {
      if (typeof value !== 'string' || value.length === 0) throw configError(name, 'must be a non-empty string');
    }
    this.#client = client;
    this.stream = stream;
    this.group = group;
    this.consumer = consumer;
    this.#count = positive(options.count ?? CHANGE_LOG_READER_DEFAULTS.count, 'count');
    this.#blockMs = positive(options.blockMs ?? CHANGE_LOG_READER_DEFAULTS.blockMs, 'blockMs');
    this.#claimIdleMs = positive(options.claimIdleMs ?? CHANGE_LOG_READER_DEFAULTS.claimIdleMs, 'claimIdleMs');
    this.#start = options.start ?? CHANGE_LOG_READER_DEFAULTS.start;
    if (this.#start !== '0' && this.#start !== '$') throw configError('start', 'must be "0" or "$"');
  }

  /**
   * The next entries: first this consumer's own pending ones (delivered before a crash, never
   * acknowledged), then pending ones of consumers idle for `claimIdleMs`, then new ones (waiting
   * up to `blockMs`). Malformed entries are acknowledged, skipped and counted.
   */
  async read(): Promise<ReadEntry[]> {
    await this.#ensureGroup();
    if (this.#pendingCursor !== null) {
      const own = await this.#readGroup(this.#client, this.#pendingCursor, false);
      if (own.length > 0) {
        this.#pendingCursor = own[own.length - 1]?.[0] ?? null;
        return this.#decode(own);
      }
      this.#pendingCursor = null;
    }
    if (Date.now() - this.#lastClaim >= this.#claimIdleMs / 2) {
      const claimed = await this.#claim();
      if (claimed.length > 0) return this.#decode(claimed);
    }
    return this.#decode(await this.#readGroup(this.#blockingClient(), '>', true));
  }

  /** Acknowledges entries once applied. */
  async ack(streamIds: readonly string[]): Promise<void> {
    if (streamIds.length > 0) await this.#client.xack(this.stream, this.group, ...streamIds);
  }

  /**
   * Reads and handles entries until `signal` aborts: each entry is acknowledged after `handler`
   * resolved. A handler that throws stops the loop with its error (published as `apply`
   * failure); that entry and the rest of its batch stay pending and are read again.
   */
  async run(handler: (entry: ChangeEntry, streamId: string) => Promise<void>, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    const stop = () => {
      this.#blocking?.disconnect();
      this.#blocking = null;
    };
    signal?.addEventListener('abort', stop, { once: true });
    try {
      while (!signal?.aborted && !this.#closed) {
        let batch: ReadEntry[];
        try {
          batch = await this.read();
        } catch (error) {
          if (signal?.aborted) return;
          throw error;
        }
        const done: string[] = [];
        try {
          for (const { streamId, entry } of batch) {
            await handler(entry, streamId);
            done.push(streamId);
          }
        } catch (error) {
          publishFailed('redis-streams', 'apply');
          throw error;
        } finally {
          await this.ack(done);
        }
        if (lagWanted()) await this.publishLag();
      }
    } finally {
      signal?.removeEventListener('abort', stop);
    }
  }

  /**
   * How far the group is behind: entries not yet delivered plus delivered but unacknowledged,
   * and the age of the oldest of them.
   */
  async lag(): Promise<{ entries: number | null; pending: number; ageMs: number }> {
    const groups = (await this.#client.call('XINFO', 'GROUPS', this.stream)) as unknown[][];
    const info = groups.map(flatObject).find((group) => group.name === this.group);
    if (info === undefined) return { entries: null, pending: 0, ageMs: 0 };
    const pending = Number(info.pending ?? 0);
    const undelivered = info.lag === null || info.lag === undefined ? null : Number(info.lag);
    let oldest: string | null = null;
    if (pending > 0) {
      const summary = (await this.#client.xpending(this.stream, this.group)) as [number, string | null, string | null, unknown];
      oldest = summary[1];
    }
    if (oldest === null && undelivered !== 0) {
      const [next] = (await this.#client.xrange(this.stream, `(${String(info['last-delivered-id'] ?? '0-0')}`, '+', 'COUNT', 1)) as RawStreamEntry[];
      oldest = next?.[0] ?? null;
    }
    return { entries: undelivered === null ? null : undelivered + pending, pending, ageMs: oldest === null ? 0 : Math.max(0, Date.now() - idTime(oldest)) };
  }

  async publishLag(): Promise<void> {
    const { entries, ageMs } = await this.lag();
    publishLag('redis-streams', this.group, entries, ageMs);
  }

  /** Closes the blocking connection (the client passed in stays open). */
  close(): void {
    this.#closed = true;
    this.#blocking?.disconnect();
    this.#blocking = null;
  }

  /** A connection of its own for blocking reads, whose command timeout outlasts the block. */
  #blockingClient(): Redis {
    if (this.#blocking === null) {
      this.#blocking = this.#client.duplicate({ commandTimeout: this.#blockMs + 5_000 });
      this.#blocking.on('error', ignore);
    }
    return this.#blocking;
  }

  async #ensureGroup(): Promise<void> {
    if (this.#groupReady) return;
    try {
      await this.#client.xgroup('CREATE', this.stream, this.group, this.#start, 'MKSTREAM');
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('BUSYGROUP')) throw error;
    }
    this.#groupReady = true;
  }

  async #readGroup(client: Redis, id: string, block: boolean): Promise<RawStreamEntry[]> {
    const args: (string | number)[] = ['GROUP', this.group, this.consumer, 'COUNT', this.#count];
    if (block) args.push('BLOCK', this.#blockMs);
    const reply = (await client.call('XREADGROUP', ...args, 'STREAMS', this.stream, id)) as [string, RawStreamEntry[]][] | null;
    return reply?.[0]?.[1] ?? [];
  }

  async #claim(): Promise<RawStreamEntry[]> {
    this.#lastClaim = Date.now();
    const [next, entries, deleted] = (await this.#client.call('XAUTOCLAIM', this.stream, this.group, this.consumer, this.#claimIdleMs, this.#claimCursor, 'COUNT', this.#count)) as [string, RawStreamEntry[], string[] | undefined];
    this.#claimCursor = next;
    // Claimed entries the stream no longer holds (trimmed by age before anyone applied them).
    if (deleted && deleted.length > 0) publishFailed('redis-streams', 'trimmed', deleted.length);
    return entries;
  }

  async #decode(raw: RawStreamEntry[]): Promise<ReadEntry[]> {
    const out: ReadEntry[] = [];
    const skip: string[] = [];
    let trimmed = 0;
    for (const [streamId, fields] of raw) {
      if (fields === null) trimmed++;
      try {
        out.push({ streamId, entry: decodeStreamEntry(fields, streamId) });
      } catch {
        skip.push(streamId);
        if (fields !== null) publishFailed('redis-streams', 'decode');
      }
    }
    if (trimmed > 0) publishFailed('redis-streams', 'trimmed', trimmed);
    // Nothing can apply them: acknowledged, so they do not come back forever.
    await this.ack(skip);
    return out.sort((a, b) => compareIds(a.streamId, b.streamId));
  }
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw configError(name, 'must be a positive integer');
  return value;
}

function flatObject(flat: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}

function ignore(): void {}
