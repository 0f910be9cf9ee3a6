export { runStoreConformance } from './suite.js';
export type { ConformanceOptions, StoreFixture, TestRegistrar } from './context.js';
export { fieldValue, stampAt, storedFields, storedRecord, storeKey } from './fixtures.js';
export { ModelStore } from './model.js';
