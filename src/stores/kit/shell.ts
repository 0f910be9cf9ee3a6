import { SessionError } from '../../core/errors.js';

/**
 * The lifecycle every store shares: operations are refused once it is closed, a typed error
 * passes through, and any other failure becomes the store's typed error through `classify`
 * (which must redact what the driver put in it: messages may quote keys or addresses; the
 * default keeps no cause at all).
 */
export class StoreShell {
  readonly store: string;
  readonly #classify: (error: unknown, operation: string) => SessionError;
  readonly #timeoutMs: number | undefined;
  #closed = false;

  constructor(store: string, options: { classify?: (error: unknown, operation: string) => SessionError; timeoutMs?: number } = {}) {
    this.store = store;
    this.#classify = options.classify ?? ((_, operation) => new SessionError('ESESS_STORE_UNAVAILABLE', { context: { store, operation } }));
    this.#timeoutMs = options.timeoutMs;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Throws ESESS_STORE_CLOSED after `close()`. */
  open(operation?: string): void {
    if (this.#closed) throw new SessionError('ESESS_STORE_CLOSED', { context: { store: this.store, ...(operation === undefined ? {} : { operation }) } });
  }

  /** Runs one operation: refused after close, bounded by the timeout if one is set, and its failures typed. */
  async run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    this.open(operation);
    try {
      return await (this.#timeoutMs === undefined ? fn() : withTimeout(fn(), this.#timeoutMs));
    } catch (error) {
      if (error instanceof SessionError) throw error;
      if (this.#closed) throw new SessionError('ESESS_STORE_CLOSED', { context: { store: this.store, operation } });
      if (error instanceof TimeoutError) {
        throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: `The ${this.store} store did not answer within ${this.#timeoutMs} ms`, context: { store: this.store, operation, kind: 'timeout' } });
      }
      throw this.#classify(error, operation);
    }
  }

  /** Marks the store closed; false when it already was (a second close() does nothing). */
  close(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    return true;
  }
}

export class TimeoutError extends Error {}

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A setup step (a schema check, a bucket's settings) run once, on first use: concurrent callers
 * share one run, and a failure is forgotten so the next call tries again.
 */
export function once(init: () => Promise<void>): () => Promise<void> {
  let ready: Promise<void> | undefined;
  return () => {
    ready ??= init().catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };
}
