import type { KvEntry } from 'nats';
import { expiresAt } from '../../core/types.js';
import { decodeRecord, decodeWatermark, encodeLease, INDEX_PREFIX, indexDeadline, readLease, SESSION_PREFIX, SWEEP_LEASE, WATERMARK_PREFIX } from './codec.js';
import { removeEntry, walkBucket, writeEntry } from './bucket.js';
import type { NatsKv } from './store.js';

/**
 * One sweep batch: deletes up to `limit` dead entries, each on the revision it was read at (a
 * record written meanwhile stays), from where the previous batch of any instance stopped (the
 * lease entry keeps the position). Returns 0 at once while another instance holds the lease.
 */
export async function sweepBatch(kv: NatsKv, walkBudgetMs: number, clock: () => number, limit: number): Promise<number> {
  const lease = await kv.get(SWEEP_LEASE);
  const state = readLease(lease);
  const now = clock();
  if (state.heldUntil > now) return 0;
  // The lease outlasts any batch: a walk stops after walkBudgetMs, the deletes are bounded by the request timeout.
  const held = await writeEntry(kv, SWEEP_LEASE, encodeLease(state.next, now + 4 * walkBudgetMs), lease?.revision ?? 0);
  if (held === null) return 0;
  let next = state.next;
  try {
    const dead: { item: string; revision: number }[] = [];
    const walked = await walkBucket(kv, walkBudgetMs, '>', next, (entry) => {
      if (isDead(entry, clock())) dead.push({ item: entry.key, revision: entry.revision });
      return dead.length < limit;
    });
    next = walked.next ?? 1;
    const removed = await Promise.all(dead.map(({ item, revision }) => removeEntry(kv, item, revision)));
    return removed.filter(Boolean).length;
  } finally {
    // A lease left behind (NATS failed just now) ends by itself at heldUntil.
    await writeEntry(kv, SWEEP_LEASE, encodeLease(next, 0), held).catch(() => null);
  }
}

/** Whether the entry may go: an expired session, a dead tombstone or watermark, an index entry of a dead session. */
function isDead(entry: KvEntry, now: number): boolean {
  if (entry.operation !== 'PUT') return false;
  if (entry.key.startsWith(INDEX_PREFIX)) return indexDeadline(entry.value) <= now;
  // An unreadable watermark is kept (the bucket's max_age removes it), as an unreadable index entry is.
  if (entry.key.startsWith(WATERMARK_PREFIX)) return (decodeWatermark(entry.value)?.until ?? Number.POSITIVE_INFINITY) <= now;
  if (!entry.key.startsWith(SESSION_PREFIX)) return false;
  const record = decodeRecord(entry.value);
  return record.kind === 'tombstone' ? record.until <= now : record.kind === 'live' && expiresAt(record.session) <= now;
}
