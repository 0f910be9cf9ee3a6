export { ENCRYPTION_KEY_BYTES, EXAMPLE_ENCRYPTION_KEYS, FieldCipher, generateEncryptionKey, isProductionMode, isWeakKey, parseEncryptionKeys } from './encrypted/cipher.js';
export type { EncryptionKey, OpenFailure } from './encrypted/cipher.js';
export { canScan, reencryptAll } from './encrypted/reencrypt.js';
export type { ReencryptOptions, ReencryptProgress, ScanPage } from './encrypted/reencrypt.js';
export { EncryptedStore, encryptedStore } from './encrypted/store.js';
export type { EncryptedStoreOptions } from './encrypted/store.js';
