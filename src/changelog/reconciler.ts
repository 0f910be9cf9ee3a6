import { configError } from '../core/errors.js';

/** A store that can find the expirations its server did silently (`RedisStore` with a change log). */
export interface ExpiryReconciling {
  reconcileExpirations(limit: number): Promise<number>;
}

export interface ExpiryReconcilerOptions {
  /** How often to look. @default 1000 */
  intervalMs?: number;
  /** Expirations per round trip; a round that finds this many runs again at once. @default 1000 */
  limit?: number;
  /** A failed round (the store unreachable); the next one tries again. */
  onError?: (error: unknown) => void;
}

export interface ExpiryReconciler {
  /** Runs rounds until one comes back short; resolves with the expirations written. */
  runOnce(): Promise<number>;
  /** Stops the interval and waits for a round in progress. */
  stop(): Promise<void>;
}

export const EXPIRY_RECONCILER_DEFAULTS = { intervalMs: 1_000, limit: 1_000 } as const;

/**
 * Writes an `expire` entry for every session the store's server expired, every `intervalMs`.
 * Any number of instances may run it: each expiration is written once. An `expired` event thus
 * comes at most about `intervalMs` after the deadline, however long the reconciler was down.
 */
export function startExpiryReconciler(store: ExpiryReconciling, options: ExpiryReconcilerOptions = {}): ExpiryReconciler {
  const intervalMs = options.intervalMs ?? EXPIRY_RECONCILER_DEFAULTS.intervalMs;
  const limit = options.limit ?? EXPIRY_RECONCILER_DEFAULTS.limit;
  if (!Number.isSafeInteger(intervalMs) || intervalMs < 1) throw configError('intervalMs', 'must be a positive integer of milliseconds');
  if (!Number.isSafeInteger(limit) || limit < 1) throw configError('limit', 'must be a positive integer');
  let running: Promise<number> | undefined;
  let stopped = false;

  const runOnce = (): Promise<number> => {
    running ??= (async () => {
      try {
        let total = 0;
        for (;;) {
          const found = await store.reconcileExpirations(limit);
          total += found;
          if (found < limit || stopped) return total;
        }
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  const timer = setInterval(() => {
    runOnce().catch((error: unknown) => options.onError?.(error));
  }, intervalMs);
  timer.unref();

  return {
    runOnce,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running?.catch(() => 0);
    },
  };
}
