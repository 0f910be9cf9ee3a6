export { createBindingCheck, networkOf, DEFAULT_BINDING } from './binding.js';
export type { AnomalySubject, BindingOptions, BindingResult, BindingSignal, BindableSession, ClientSignals } from './binding.js';
export type { AnomalyEvent } from '../core/telemetry.js';
