export { runStoreConformance } from './suite.js';
export type { ConformanceOptions, StoreFixture, TestRegistrar } from './suite.js';
