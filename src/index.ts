export { SessionManager, createSessionManager, DEFAULT_OPTIONS, MAX_TIMEOUT_SECONDS } from './core/manager.js';
export type { SessionManagerOptions, CookieCandidate, CreateOptions, EventContext, RegenerateOptions, SaveOptions, SaveResult, UserSessionSummary } from './core/manager.js';
export { AUTH_LEVELS, Session } from './core/session.js';
export type { Authentication, AuthenticationInput, AuthLevel, SessionData } from './core/session.js';
export { SessionError, isSessionError, ERROR_CODES } from './core/errors.js';
export type { ErrorCode, SessionErrorOptions } from './core/errors.js';
export { DEFAULT_COOKIE } from './core/cookie.js';
export type { CookieOptions } from './core/cookie.js';
export { DEFAULT_DATA_LIMITS, safeJsonParse } from './core/json.js';
export type { DataLimits } from './core/json.js';
export { CHANNELS } from './core/telemetry.js';
export type { AnomalyEvent, CookieRejectedEvent, EventSubject, SessionEvent, SessionEventType, StoreOperationContext, TokenRejectedEvent } from './core/telemetry.js';
export { expiresAt, systemClock, TOMBSTONE_GRACE_MS } from './core/types.js';
export { covers, mergeDelta, mergeRecords, mergeWatermarks, revokedTombstone, sameState, settle, tombstoneOf, watermarkAt } from './core/record.js';
export type {
  ApplyResult,
  Clock,
  KeyState,
  LiveState,
  MergeOutcome,
  TombstoneState,
  Watermark,
  SessionDelta,
  SessionMeta,
  SessionStore,
  StoreCapabilities,
  StoredField,
  StoredSession,
  StoredSummary,
} from './core/types.js';
