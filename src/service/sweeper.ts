import { SessionError } from '../core/errors.js';
import type { SessionManager } from '../core/manager.js';
import type { SessionStore } from '../core/types.js';
import { errorKind } from '../telemetry-labels.js';
import { DEFAULT_SERVICE_CONFIG } from './config.js';

export interface Sweeper {
  /** Sweeps until a batch comes back short (or the service closes); one sweep at a time. */
  sweep(): Promise<number>;
  /** Stops the interval. */
  stop(): void;
  /** Resolves once a sweep in progress has ended. */
  idle(): Promise<void>;
}

/**
 * Step 6 of `createService`: sweeps a store without native expiry every `intervalMs` (0: only
 * when asked). A failed sweep is logged; the next one tries again.
 */
export function startSweeper(
  manager: SessionManager,
  store: SessionStore,
  options: { intervalMs: number; closing: () => boolean; logError: (kind: string, line: string) => void },
): Sweeper {
  const batch = DEFAULT_SERVICE_CONFIG.sweepBatch;
  let sweeping: Promise<number> | undefined;

  function sweep(): Promise<number> {
    sweeping ??= (async () => {
      try {
        let total = 0;
        for (;;) {
          const removed = await manager.sweep(batch);
          total += removed;
          if (removed < batch || options.closing()) return total;
        }
      } finally {
        sweeping = undefined;
      }
    })();
    return sweeping;
  }

  const { capabilities } = store;
  let timer: NodeJS.Timeout | undefined;
  if (capabilities.sweep && !capabilities.nativeTtl && options.intervalMs > 0) {
    timer = setInterval(() => {
      sweep().catch((error: unknown) => options.logError('sweep', `sweep failed: ${error instanceof SessionError ? error.code : errorKind(error)}`));
    }, options.intervalMs);
    timer.unref();
  }

  return {
    sweep,
    stop() {
      if (timer) clearInterval(timer);
    },
    async idle() {
      await sweeping?.catch(() => 0);
    },
  };
}
