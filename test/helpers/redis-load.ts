import { randomBytes } from 'node:crypto';
import { isSessionError } from '../../src/core/errors.js';
import type { SessionStore } from '../../src/core/types.js';
import { stampAt, storedRecord, storeKey } from '../../src/testing/fixtures.js';
import { sleep } from './redis-servers.js';

/** An operation that neither settles nor fails within this long counts as a hang. */
const HANG_MS = 12_000;

export interface LoadReport {
  operations: number;
  acknowledgedCreates: number;
  acknowledgedWrites: number;
  /** Typed retriable errors by `context.kind`. */
  retriable: Record<string, number>;
  /** Anything else a caller saw: must stay empty. */
  nonRetriable: string[];
  hangs: number;
  /** `apply` answered "gone" for a session whose creation had been acknowledged. */
  goneAfterAck: number;
  slowestMs: number;
  /** When the last acknowledgement arrived (ms since the epoch). */
  lastAcknowledgedAt: number;
}

/**
 * Workers that create sessions and write new fields to them as fast as the store answers,
 * recording what the store acknowledged. Errors get a short pause (what a caller would do),
 * never a silent retry: every failure is counted.
 */
export class SessionLoad {
  readonly #store: SessionStore;
  readonly #workers: number;
  readonly #users: boolean;
  readonly sessions = new Map<string, { userId: string | null; fields: Set<string> }>();
  readonly report: LoadReport = { operations: 0, acknowledgedCreates: 0, acknowledgedWrites: 0, retriable: {}, nonRetriable: [], hangs: 0, goneAfterAck: 0, slowestMs: 0, lastAcknowledgedAt: 0 };
  #running: Promise<void>[] = [];
  #stopped = false;
  #counter = 0;

  constructor(store: SessionStore, options: { workers: number; users?: boolean }) {
    this.#store = store;
    this.#workers = options.workers;
    this.#users = options.users ?? true;
  }

  start(): void {
    this.#running = Array.from({ length: this.#workers }, (_, worker) => this.#work(worker));
  }

  async stop(): Promise<LoadReport> {
    this.#stopped = true;
    await Promise.all(this.#running);
    return this.report;
  }

  async #work(worker: number): Promise<void> {
    const own: string[] = [];
    const userId = this.#users ? `load-user-${worker}-${randomBytes(3).toString('hex')}` : null;
    while (!this.#stopped) {
      const create = own.length < 3 || Math.random() < 0.15;
      const key = create ? storeKey() : (own[Math.floor(Math.random() * own.length)] as string);
      const field = `w${this.#counter++}`;
      const started = Date.now();
      const operation: Promise<'created' | 'taken' | 'ok' | 'gone' | 'conflict'> = create
        ? this.#store.create(key, storedRecord({ c: 0 }, { userId })).then((created) => (created ? 'created' : 'taken'))
        : this.#store.apply(key, { fields: { [field]: { value: '1', stamp: stampAt(Date.now()) } }, lastSeenAt: Date.now() }).then((result) => result.status);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const hang = new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), HANG_MS)));
      try {
        const outcome = await Promise.race([operation, hang]);
        this.report.operations++;
        this.report.slowestMs = Math.max(this.report.slowestMs, Date.now() - started);
        if (outcome === 'hang') {
          this.report.hangs++;
        } else if (outcome === 'created') {
          this.report.acknowledgedCreates++;
          this.report.lastAcknowledgedAt = Date.now();
          this.sessions.set(key, { userId, fields: new Set(['c']) });
          own.push(key);
        } else if (outcome === 'ok') {
          this.report.acknowledgedWrites++;
          this.report.lastAcknowledgedAt = Date.now();
          this.sessions.get(key)?.fields.add(field);
        } else if (outcome === 'gone') {
          this.report.goneAfterAck++;
          own.splice(own.indexOf(key), 1);
        } else {
          this.report.nonRetriable.push(`unexpected outcome ${outcome}`);
        }
      } catch (error) {
        this.report.operations++;
        this.report.slowestMs = Math.max(this.report.slowestMs, Date.now() - started);
        if (isSessionError(error) && error.retriable) {
          const kind = String(error.context.kind ?? error.code);
          this.report.retriable[kind] = (this.report.retriable[kind] ?? 0) + 1;
          await sleep(25);
        } else {
          this.report.nonRetriable.push(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
        }
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /** Reads back everything acknowledged: sessions missing, field writes missing, and live sessions missing from their user's list. */
  async verify(reader: SessionStore): Promise<{ sessions: number; lostSessions: number; lostWrites: number; unlisted: number }> {
    let lostSessions = 0;
    let lostWrites = 0;
    const entries = [...this.sessions];
    const present = new Set<string>();
    for (let i = 0; i < entries.length; i += 100) {
      const batch = entries.slice(i, i + 100);
      const loaded = await Promise.all(batch.map(([key]) => reader.load(key)));
      batch.forEach(([, expected], j) => {
        const session = loaded[j];
        if (!session) {
          lostSessions++;
          lostWrites += expected.fields.size;
          return;
        }
        present.add(batch[j]?.[0] as string);
        for (const field of expected.fields) if (session.fields[field]?.value == null) lostWrites++;
      });
    }
    let unlisted = 0;
    const byUser = new Map<string, string[]>();
    for (const [key, { userId }] of entries) if (userId !== null && present.has(key)) byUser.set(userId, [...(byUser.get(userId) ?? []), key]);
    for (const [userId, keys] of byUser) {
      const listed = new Set((await reader.listByUser(userId)).map((summary) => summary.key));
      unlisted += keys.filter((key) => !listed.has(key)).length;
    }
    return { sessions: entries.length, lostSessions, lostWrites, unlisted };
  }
}
