import { createHash, timingSafeEqual } from 'node:crypto';

const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Checks `Authorization: Bearer <key>` against the configured keys. Comparison is over
 * SHA-256 digests with `timingSafeEqual` and visits every key, so timing reveals neither
 * which key nor how much of it matched. With no keys configured every request passes.
 */
export function createAuthenticator(keys: readonly string[]): (header: string | undefined) => boolean {
  const digests = keys.map(digest);
  if (digests.length === 0) return () => true;
  return (header) => {
    const match = header === undefined ? null : BEARER.exec(header);
    const given = digest(match?.[1] ?? '');
    let ok = match !== null;
    let any = false;
    for (const expected of digests) any = timingSafeEqual(given, expected) || any;
    ok = ok && any;
    return ok;
  };
}
