import { SessionError } from './errors.js';

export interface DataLimits {
  /** Largest encoded size of all fields together, in bytes. @default 65536 */
  maxBytes: number;
  /** Most top-level fields. @default 256 */
  maxFields: number;
  /** Deepest nesting of objects and arrays inside a field value. @default 16 */
  maxDepth: number;
}

export const DEFAULT_DATA_LIMITS: DataLimits = { maxBytes: 64 * 1024, maxFields: 256, maxDepth: 16 };

const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Quick pre-check: only text that could spell a dangerous key (directly or \u-escaped) pays for the reviver. */
const MAYBE_UNSAFE = /__proto__|constructor|prototype|\\u/;

export function isUnsafeKey(key: string): boolean {
  return UNSAFE_KEYS.has(key);
}

/**
 * Measures nesting depth of JSON text without parsing it, so absurdly nested input is refused
 * before `JSON.parse` spends time or stack on it.
 */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > max) max = depth;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/**
 * `JSON.parse` that refuses `__proto__`, `constructor` and `prototype` keys at any depth and
 * input nested deeper than `maxDepth` (counting the outermost container as 1).
 */
export function safeJsonParse(text: string, maxDepth: number): unknown {
  // Only text that opens with a container can nest: scalars (most field values) skip the scan.
  if (opensContainer(text) && jsonDepth(text) > maxDepth) {
    throw new SessionError('ESESS_TOO_DEEP', { message: `JSON nested deeper than ${maxDepth} levels`, context: { maxDepth } });
  }
  let value: unknown;
  try {
    value = MAYBE_UNSAFE.test(text)
      ? JSON.parse(text, function (key, v: unknown) {
          if (UNSAFE_KEYS.has(key)) throw new SessionError('ESESS_UNSAFE_KEY', { message: `Forbidden key "${key}" in JSON input`, context: { key } });
          return v;
        })
      : JSON.parse(text);
  } catch (error) {
    if (error instanceof SessionError) throw error;
    throw new SessionError('ESESS_INVALID_INPUT', { message: 'Malformed JSON', cause: error });
  }
  return value;
}

function opensContainer(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return c === 0x7b || c === 0x5b;
  }
  return false;
}

/**
 * Encodes one field value, checking that it survives a JSON round trip unchanged in kind,
 * has no unsafe keys and is not nested deeper than `maxDepth`.
 */
export function encodeValue(field: string, value: unknown, maxDepth: number): string {
  checkValue(field, value, 0, maxDepth, new Set());
  return JSON.stringify(value);
}

function checkValue(field: string, value: unknown, depth: number, maxDepth: number, seen: Set<object>): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw notSerializable(field, 'non-finite number');
      return;
    case 'object': {
      if (value === null) return;
      if (depth + 1 > maxDepth) throw new SessionError('ESESS_TOO_DEEP', { message: `A field value is nested deeper than limits.maxDepth (${maxDepth})`, context: { field, maxDepth } });
      if (seen.has(value)) throw notSerializable(field, 'circular reference');
      if (!Array.isArray(value)) {
        const proto: unknown = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) throw notSerializable(field, 'not a plain object or array');
      }
      seen.add(value);
      for (const [key, item] of Object.entries(value)) {
        if (UNSAFE_KEYS.has(key)) throw new SessionError('ESESS_UNSAFE_KEY', { message: `Forbidden key "${key}" inside a field value`, context: { field, key } });
        checkValue(field, item, depth + 1, maxDepth, seen);
      }
      seen.delete(value);
      return;
    }
    default:
      throw notSerializable(field, typeof value);
  }
}

function notSerializable(field: string, kind: string): SessionError {
  return new SessionError('ESESS_NOT_SERIALIZABLE', { message: `Field "${field}" holds a ${kind}`, context: { field, kind } });
}
