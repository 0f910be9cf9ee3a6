import { expect } from 'vitest';
import { storeKeyOf } from '../../src/core/ids.js';
import { SessionManager } from '../../src/core/manager.js';
import type { SessionStore } from '../../src/core/types.js';
import { encryptedStore, reencryptAll } from '../../src/stores/encrypted.js';

/** `count` sessions of two fields each sealed by `oldKey` in `inner`, and one destroyed; their IDs. */
export async function sessionsUnderOldKey(inner: SessionStore, oldKey: string, secrets: string[], count = 30): Promise<string[]> {
  const before = new SessionManager({ store: encryptedStore(inner, { keys: [oldKey] }), secrets });
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const session = before.create({ data: { i, text: `value-${i}` } });
    await before.save(session);
    ids.push(session.id);
  }
  const gone = before.create({ data: { i: -1 } });
  await before.save(gone);
  await before.destroy(gone);
  return ids;
}

/** Every field of those sessions is sealed by `newKey`, a walk finds nothing left, and `newKey` alone reads them. */
export async function expectAllUnderNewKey(inner: SessionStore, ids: readonly string[], keys: { newKey: string; oldKey: string }, secrets: string[]): Promise<void> {
  for (const id of ids) {
    const stored = await inner.load(storeKeyOf(id));
    expect(Object.keys(stored?.fields ?? {}), 'two data fields and the two reserved ones').toHaveLength(4);
    for (const field of Object.values(stored?.fields ?? {})) expect(field.value?.split('.')[1]).toBe('new');
  }
  const rotated = encryptedStore(inner, { keys: [keys.newKey, keys.oldKey] });
  expect(await reencryptAll(rotated, { batch: 7 }), 'a second walk, in pages of 7, finds nothing left').toEqual({ scanned: ids.length, rewritten: 0, fields: 0, passes: 1, clean: true });
  const after = new SessionManager({ store: encryptedStore(inner, { keys: [keys.newKey] }), secrets });
  for (const [i, id] of ids.entries()) expect((await after.load(id))?.get('text')).toBe(`value-${i}`);
}
