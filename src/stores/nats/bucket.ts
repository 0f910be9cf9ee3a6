import type { KvEntry, QueuedIterator } from 'nats';
import { SessionError } from '../../core/errors.js';
import { isWrongLastSequence, STORE } from './errors.js';
import type { NatsKv } from './store.js';

/** The bucket primitives the store builds on: conditional writes and deletes, and walks. */

/**
 * Writes `value` if the entry is still at `previous` (0: the key has never been written or was
 * purged; undefined: unconditionally). The new revision, or null when another write came first.
 */
export async function writeEntry(kv: NatsKv, item: string, value: string, previous: number | undefined): Promise<number | null> {
  try {
    return await kv.put(item, value, previous === undefined ? undefined : { previousSeq: previous });
  } catch (error) {
    if (isWrongLastSequence(error)) return null;
    throw error;
  }
}

/** Deletes the entry if it is still at `revision`; whether it did. */
export async function removeEntry(kv: NatsKv, item: string, revision: number): Promise<boolean> {
  try {
    await kv.delete(item, { previousSeq: revision });
    return true;
  } catch (error) {
    if (isWrongLastSequence(error)) return false;
    throw error;
  }
}

/**
 * Visits the messages under `filter` in stream order from sequence `from` until `visit`
 * returns false or the walk catches up with the end of the stream (`next` is then null),
 * or `budgetMs` passes. `next` is the sequence to continue from.
 */
export async function walkBucket(kv: NatsKv, budgetMs: number, filter: string, from: number, visit: (entry: KvEntry) => boolean): Promise<{ next: number | null }> {
  let caughtUp = false;
  let outOfTime = false;
  let entries: QueuedIterator<KvEntry> | undefined;
  const timer = setTimeout(() => {
    outOfTime = true;
    entries?.stop();
  }, budgetMs);
  let next = from;
  try {
    entries = await kv.watch({
      key: filter,
      resumeFromRevision: from,
      initializedFn: () => {
        caughtUp = true;
        entries?.stop();
      },
    });
    // With nothing to deliver, the watch reports being caught up before it returns.
    if (caughtUp || outOfTime) entries.stop();
    for await (const entry of entries) {
      next = entry.revision + 1;
      if (!visit(entry)) return { next };
    }
  } finally {
    clearTimeout(timer);
    entries?.stop();
  }
  if (caughtUp) return { next: null };
  if (outOfTime && next > from) return { next };
  throw new SessionError('ESESS_STORE_UNAVAILABLE', {
    message: outOfTime ? `NATS delivered nothing of the bucket within ${budgetMs} ms` : 'The NATS subscription ended before the walk was done',
    context: { store: STORE, kind: outOfTime ? 'timeout' : 'connection' },
  });
}
