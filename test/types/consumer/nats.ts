// The NATS store's entry point. The nats driver's own declarations use the DOM's TextEncoder and
// TextDecoder types, so this file is compiled with the DOM library (tsconfig.nats.json), as any
// app that imports nats must be under skipLibCheck: false.
import { natsStore, openNatsStore } from 'elastic-session/stores/nats';
import type { NatsStore } from 'elastic-session/stores/nats';

export const opened: Promise<NatsStore> = openNatsStore('nats://127.0.0.1:4222?bucket=sessions');
export const factory = natsStore;
