import type { SessionManager } from '../core/manager.js';
import type { SessionStore, StoreCapabilities, StoredSession } from '../core/types.js';

type Body = () => void | Promise<void>;

/** The test functions of your runner (vitest, jest, node:test wrapped, ...). */
export interface TestRegistrar {
  describe: (name: string, body: () => void) => void;
  it: (name: string, body: Body, timeout?: number) => void;
  /** Registers a case as skipped (vitest and jest: `it.skip`), so a capability gap shows by name and never passes. */
  skip: (name: string, body: Body) => void;
  beforeEach: (body: Body) => void;
  afterEach: (body: Body) => void;
}

export interface StoreFixture {
  store: SessionStore;
  /** Another store on the same data over its own connection; required when `multiClient` is declared. */
  connect?: () => Promise<SessionStore>;
  /** Overwrites the stored record of `key` with unreadable bytes; required when `corrupts` is declared. */
  corrupt?: (key: string) => Promise<void>;
  cleanup?: () => Promise<void>;
}

export interface ConformanceOptions {
  name: string;
  /** Whether the store reads time from the injected clock; otherwise expiry is tested with real short timeouts. */
  fakeClock: boolean;
  /** The capabilities the store declares; cases they rule out are registered as skipped, and one case checks the store declares exactly these. */
  capabilities: StoreCapabilities;
  /** The fixture's `connect` gives a second client on the same data: enables the multi-client cases. */
  multiClient: boolean;
  /** The fixture's `corrupt` can write unreadable bytes: enables the corrupt-record case. */
  corrupts: boolean;
  /** Random operation sequences per model-based property. @default 25 */
  modelRuns?: number;
  setup: (context: { clock: () => number }) => Promise<StoreFixture>;
}

/** What every topic of the suite shares: the registrar, the options, and the store of the running case. */
export interface SuiteContext {
  t: TestRegistrar;
  options: ConformanceOptions;
  /** Registers `name` when `enabled`, else as skipped with the reason in its name. */
  when: (enabled: boolean, reason: string, name: string, body: Body, timeout?: number) => void;
  store: () => SessionStore;
  fixture: () => StoreFixture;
  /** Another client on the same data (or the same store when the fixture has none). */
  connect: () => Promise<SessionStore>;
  clock: () => number;
  /** Time passing: the fake clock moves; a store on real time waits for real. */
  advance: (ms: number) => Promise<void>;
  /** A stamp at the clock's now plus `offset` ms, with a random node part. */
  stamp: (offset?: number) => string;
  /** A live record created now. */
  record: (fields?: Record<string, unknown>, meta?: Partial<StoredSession>) => StoredSession;
  manager: (on: SessionStore, options?: { maxRetries?: number }) => SessionManager;
}

export const SECRET = 'conformance-suite-secret-0123456789abcdef';
export const HOUR = 3_600_000;
