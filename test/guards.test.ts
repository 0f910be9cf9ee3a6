import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSessionError, safeJsonParse, SessionError } from '../src/index.js';
import { generateId, Keyring } from '../src/core/ids.js';
import { jsonDepth } from '../src/core/json.js';

const keyring = new Keyring(['k'.repeat(32), 'o'.repeat(32)]);

describe('cookie codec', () => {
  it('verify(sign(id)) returns the id for any generated ID', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const id = Buffer.from(bytes).toString('base64url');
        expect(keyring.verify(keyring.sign(id))).toEqual({ id, current: true });
      }),
    );
  });

  it('rejects every single-character change of a signed value', () => {
    const signed = keyring.sign(generateId());
    fc.assert(
      fc.property(fc.nat({ max: signed.length - 1 }), fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.'), (index, char) => {
        fc.pre(signed[index] !== char);
        const changed = signed.slice(0, index) + char + signed.slice(index + 1);
        expect('reason' in keyring.verify(changed)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200, unit: 'binary' }), (value) => {
        expect('reason' in keyring.verify(value)).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('JSON guard', () => {
  const safeJson = fc.jsonValue({ maxDepth: 6 }).filter((value) => !/__proto__|"constructor"|"prototype"/.test(JSON.stringify(value)));

  it('round-trips any JSON value without forbidden keys', () => {
    fc.assert(
      fc.property(safeJson, (value) => {
        // What JSON itself carries (-0 becomes 0), not the generated value.
        const text = JSON.stringify(value);
        expect(safeJsonParse(text, 32)).toEqual(JSON.parse(text));
      }),
    );
  });

  it('throws only typed errors on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        try {
          safeJsonParse(text, 8);
        } catch (error) {
          expect(error).toBeInstanceOf(SessionError);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('refuses __proto__, constructor and prototype keys at any depth, also \\u-escaped', () => {
    for (const text of [
      '{"__proto__":{"polluted":1}}',
      '{"a":[{"b":{"__proto__":{"polluted":1}}}]}',
      '{"constructor":{"prototype":{"polluted":1}}}',
      '{"\\u005f_proto__":{"polluted":1}}',
      '{"\\u0063onstructor":1}',
      '{"a":{"prototype":1}}',
    ]) {
      const error = (() => {
        try {
          safeJsonParse(text, 10);
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(isSessionError(error, 'ESESS_UNSAFE_KEY'), text).toBe(true);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(safeJsonParse('{"note":"the constructor of a prototype"}', 4)).toEqual({ note: 'the constructor of a prototype' });
  });

  it('refuses deep nesting before parsing, counting brackets inside strings as text', () => {
    expect(jsonDepth('[[["[[[[["]]]')).toBe(3);
    expect(() => safeJsonParse('['.repeat(100_000) + ']'.repeat(100_000), 32)).toThrow(expect.objectContaining({ code: 'ESESS_TOO_DEEP' }));
    expect(() => safeJsonParse(' \n\t' + '['.repeat(40) + ']'.repeat(40), 32)).toThrow(expect.objectContaining({ code: 'ESESS_TOO_DEEP' }));
    expect(safeJsonParse(' "[[[[[[" ', 2)).toBe('[[[[[[');
    expect(() => safeJsonParse('{"a":', 32)).toThrow(expect.objectContaining({ code: 'ESESS_INVALID_INPUT' }));
  });
});
