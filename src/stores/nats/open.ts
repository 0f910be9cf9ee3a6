import type { ConnectionOptions, NatsConnection } from 'nats';
import { configError } from '../../core/errors.js';
import { importDriver } from '../kit/driver.js';
import { natsError } from './errors.js';
import { NatsStore } from './store.js';
import type { NatsStoreOptions } from './store.js';
import { NATS_STORE_DEFAULTS, parseNatsUrl, withoutTls } from './url.js';

export interface OpenNatsStoreOptions extends Omit<NatsStoreOptions, 'kv'> {
  /** More nats.js connection options (`tls`, `authenticator`, reconnect settings, ...); servers and credentials come from the URL. */
  connection?: ConnectionOptions;
  /** How long connecting and each JetStream request may wait for an answer. @default 5000 */
  requestTimeoutMs?: number;
}

/**
 * Opens a store over its own NATS connection from a URL (see `parseNatsUrl`), creating the
 * bucket if it is missing (history 1, file storage, `max_age` and `replicas` from the URL, reads
 * from the stream leader). An existing bucket is used as it is. The connection reconnects for
 * as long as the store is open; `close()` closes it. nats is an optional peer dependency,
 * loaded only here.
 *
 * @example
 * const store = await openNatsStore('nats://app:secret@nats1:4222,nats2:4222?bucket=sessions&max_age=30d&replicas=3');
 */
export async function openNatsStore(url: string, options: OpenNatsStoreOptions = {}): Promise<NatsStore> {
  const { rest, tls } = await withoutTls(url);
  const target = parseNatsUrl(rest);
  const { connection, requestTimeoutMs = NATS_STORE_DEFAULTS.requestTimeoutMs, ...storeOptions } = options ?? {};
  if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs < 1) throw configError('requestTimeoutMs', 'must be a positive integer of milliseconds');
  const nats = await importDriver(() => import('nats'), 'NATS', 'nats');
  const { servers, bucket, maxAgeMs, replicas, ...credentials } = target;
  let nc: NatsConnection;
  try {
    // nats.js hands its tls option on to tls.connect.
    const secured = tls === undefined ? {} : { tls: tls as NonNullable<ConnectionOptions['tls']> };
    nc = await nats.connect({ name: 'elastic-session', maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: requestTimeoutMs, ...secured, ...connection, servers, ...credentials });
  } catch (error) {
    throw natsError(error, 'open');
  }
  try {
    // Reads from the stream leader (no direct get): a replica that lags would break read-your-writes.
    const kv = await nc.jetstream({ timeout: requestTimeoutMs }).views.kv(bucket, { history: 1, ttl: maxAgeMs, replicas, allow_direct: false });
    return new NatsStore({ ...storeOptions, kv }, () => nc.close());
  } catch (error) {
    await nc.close();
    throw natsError(error, 'open');
  }
}
