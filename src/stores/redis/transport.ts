import type { ChainableCommander, Cluster, Redis } from 'ioredis';
import { SessionError } from '../../core/errors.js';
import type { RedisSettings, WaitForReplicas } from './config.js';
import type { RedisScript } from './scripts.js';

/**
 * How the store talks to Redis: scripts by SHA with an `EVAL` fallback, `WAIT` in the same
 * pipeline as a write, redirections followed, and failures typed by kind.
 */

export type ErrorKind = 'closed' | 'timeout' | 'connection' | 'cluster' | 'loading' | 'readonly' | 'busy' | 'oom' | 'replication' | 'auth' | 'server';

const MAX_REDIRECTIONS = 10;
const RETRY_DELAY_MS = 100;

export class RedisTransport {
  readonly #client: Redis | Cluster;
  readonly #cluster: boolean;
  readonly #wait: WaitForReplicas | null;

  constructor(settings: RedisSettings) {
    this.#client = settings.client;
    this.#cluster = settings.cluster;
    this.#wait = settings.wait;
  }

  /** A script that changes nothing worth waiting for (reads, pruning). */
  async read(script: RedisScript, keys: string | readonly string[], args: readonly string[]): Promise<unknown> {
    const client = this.#client as Redis;
    const declared = typeof keys === 'string' ? [keys] : keys;
    try {
      return await client.evalsha(script.sha, declared.length, ...declared, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return client.eval(script.lua, declared.length, ...declared, ...args);
    }
  }

  /**
   * A writing script. With `waitForReplicas`, `WAIT` follows in the same pipeline on the same
   * connection, so it covers this write; `wrote` tells whether the reply means something was written.
   */
  async write(script: RedisScript, keys: string | readonly string[], args: readonly string[], wrote: (reply: unknown) => boolean): Promise<unknown> {
    if (!this.#wait) return this.read(script, keys, args);
    const declared = typeof keys === 'string' ? [keys] : keys;
    const { replicas, timeoutMs } = this.#wait;
    let useEval = false;
    let target: string | null = null;
    let asking = false;
    for (let attempt = 1; attempt <= MAX_REDIRECTIONS; attempt++) {
      let pipeline: ChainableCommander;
      if (target === null) {
        pipeline = this.#client.pipeline();
      } else {
        const node = this.#node(target);
        if (!node) {
          (this.#client as Cluster).refreshSlotsCache();
          await delay(RETRY_DELAY_MS);
          target = null;
          asking = false;
          continue;
        }
        pipeline = node.pipeline();
      }
      if (asking) pipeline.asking();
      if (useEval) pipeline.eval(script.lua, declared.length, ...declared, ...args);
      else pipeline.evalsha(script.sha, declared.length, ...declared, ...args);
      pipeline.wait(replicas, timeoutMs);
      const replies = (await pipeline.exec()) ?? [];
      const [scriptError, reply] = replies[asking ? 1 : 0] ?? [new Error('Redis returned no reply')];
      const [waitError, acknowledged] = replies[replies.length - 1] ?? [new Error('Redis returned no reply')];
      if (scriptError) {
        const message = scriptError.message;
        if (message.startsWith('NOSCRIPT')) {
          useEval = true;
          continue;
        }
        // A redirected command did not run; the WAIT beside it did, which ioredis treats as
        // non-retriable, so the store follows MOVED / ASK itself, to the node named in the reply.
        const redirect = /^(MOVED|ASK) \d+ (\S+)$/.exec(message);
        if (redirect && this.#cluster) {
          target = redirect[2] as string;
          asking = redirect[1] === 'ASK';
          if (!asking) (this.#client as Cluster).refreshSlotsCache();
          continue;
        }
        if (/^(TRYAGAIN|CLUSTERDOWN)\b/.test(message)) {
          await delay(RETRY_DELAY_MS);
          target = null;
          asking = false;
          continue;
        }
        throw scriptError;
      }
      if (!wrote(reply)) return reply;
      const count = waitError ? 0 : Number(acknowledged);
      if (count < replicas) {
        throw new SessionError('ESESS_STORE_UNAVAILABLE', {
          message: `The write was applied on the primary, but ${count} of ${replicas} replica(s) acknowledged it within ${timeoutMs} ms`,
          cause: waitError ? redacted(waitError) : undefined,
          context: { store: 'redis', kind: 'replication', reason: 'replication', acknowledged: count, required: replicas },
        });
      }
      return reply;
    }
    throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: 'Too many cluster redirections', context: { store: 'redis', kind: 'cluster' } });
  }

  #node(address: string): Redis | undefined {
    if (!this.#cluster) return undefined;
    return (this.#client as Cluster).nodes('all').find((node) => `${node.options.host}:${node.options.port}` === address);
  }
}

export function isWrongType(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('WRONGTYPE');
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

export function errorKind(error: unknown): ErrorKind {
  const message = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.name : '';
  if (/timed out/i.test(message)) return 'timeout';
  if (/^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK)\b|cluster redirections|slots cache|startup nodes/i.test(message) || name === 'ClusterAllFailedError') return 'cluster';
  if (message.startsWith('LOADING')) return 'loading';
  if (message.startsWith('READONLY') || message.startsWith('MASTERDOWN')) return 'readonly';
  if (message.startsWith('BUSY')) return 'busy';
  if (message.startsWith('OOM')) return 'oom';
  if (/^(NOAUTH|WRONGPASS|NOPERM)/.test(message)) return 'auth';
  if (name === 'MaxRetriesPerRequestError' || /ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|Connection is closed|Stream isn't writeable|connect/i.test(message)) return 'connection';
  return 'server';
}

/**
 * ioredis attaches the failed command (keys, field values) to its errors; a cause that may be
 * logged keeps only the name, message and system error code.
 */
export function redacted(error: unknown): Error {
  const source = error instanceof Error ? error : new Error(String(error));
  const copy = new Error(source.message);
  copy.name = source.name;
  const code = (source as { code?: unknown }).code;
  if (typeof code === 'string') Object.assign(copy, { code });
  return copy;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
