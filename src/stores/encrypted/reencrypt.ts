import { configError, SessionError } from '../../core/errors.js';
import type { SessionStore } from '../../core/types.js';
import type { EncryptedStore } from './store.js';

/** Keys of live records in key order, for walking a whole store (re-encryption, audits). */
export interface ScanPage {
  keys: string[];
  /** Pass back to get the next page; null when the walk is complete. */
  cursor: string | null;
}

type Scannable = SessionStore & { scan(cursor: string | null, limit: number): Promise<ScanPage> };

/** Whether a store can be walked: it declares the `scan` capability (and so has `scan()`). */
export function canScan(store: SessionStore): store is Scannable {
  return store.capabilities.scan && typeof store.scan === 'function';
}

export interface ReencryptProgress {
  /** Records visited, over all passes. */
  scanned: number;
  /** Records that had at least one field under an old key. */
  rewritten: number;
  /** Values re-sealed: data fields, and the two reserved fields that authenticate each record's principal and deadlines. */
  fields: number;
  /** Walks of the whole store so far. */
  passes: number;
  /** The last walk found nothing left to re-seal. */
  clean: boolean;
}

export interface ReencryptOptions {
  /** Records per `scan` page. @default 500 */
  batch?: number;
  /**
   * Walks at most this many times: until one finds nothing to re-seal. That last, clean walk is
   * the proof that the old keys can go; it also catches what a walk misses (records moved by a
   * Redis resharding or failover during it, records written meanwhile by an instance still
   * running with the old key first). @default 3
   */
  maxPasses?: number;
  signal?: AbortSignal;
  /** Called after every page. */
  onProgress?: (progress: ReencryptProgress) => void;
}

/**
 * Walks every live record of an encrypted store and re-seals what older keys sealed, in pages
 * of `batch`, again and again until a walk finds nothing left (or `maxPasses` is reached:
 * `clean` is then false). Safe while the application runs: each rewrite is a per-field delta
 * that loses to any write made meanwhile. Requires an inner store that can `scan`.
 */
export async function reencryptAll(store: EncryptedStore, options: ReencryptOptions = {}): Promise<ReencryptProgress> {
  const batch = options.batch ?? 500;
  if (!Number.isSafeInteger(batch) || batch < 1) throw configError('batch', 'must be a positive integer');
  const maxPasses = options.maxPasses ?? 3;
  if (!Number.isSafeInteger(maxPasses) || maxPasses < 1) throw configError('maxPasses', 'must be a positive integer');
  const { scan } = store;
  if (!scan) throw new SessionError('ESESS_UNSUPPORTED', { message: `The ${store.inner.name} store cannot be walked (no scan)`, context: { store: store.inner.name } });
  const progress: ReencryptProgress = { scanned: 0, rewritten: 0, fields: 0, passes: 0, clean: false };
  while (!progress.clean && progress.passes < maxPasses) {
    const rewrittenBefore = progress.rewritten;
    progress.passes++;
    let cursor: string | null = null;
    do {
      options.signal?.throwIfAborted();
      const page: ScanPage = await scan.call(store, cursor, batch);
      for (const key of page.keys) {
        const fields = await store.reencrypt(key);
        progress.scanned++;
        if (fields > 0) {
          progress.rewritten++;
          progress.fields += fields;
        }
      }
      options.onProgress?.({ ...progress });
      cursor = page.cursor;
    } while (cursor !== null);
    progress.clean = progress.rewritten === rewrittenBefore;
  }
  return progress;
}
