export { createBindingCheck, networkOf, DEFAULT_BINDING } from './binding.js';
export type { BindingOptions, BindingResult, BindingSignal, BindableSession, ClientSignals } from './binding.js';
export type { AnomalyEvent } from '../core/telemetry.js';
