import { randomBytes } from 'node:crypto';
import type { Clock } from './types.js';

const MAX_COUNTER = 0xffff;

/**
 * Hybrid logical clock. Stamps are fixed-width hex `WWWWWWWWWWWW.CCCC.NNNNNNNN` (wall ms,
 * counter, node), so comparing them as strings orders them; the node part breaks ties the
 * same way on every replica.
 */
export class HybridClock {
  readonly #clock: Clock;
  readonly #node: string;
  #wall = 0;
  #counter = 0;

  constructor(clock: Clock, node: string = randomBytes(4).toString('hex')) {
    this.#clock = clock;
    this.#node = node;
  }

  now(): string {
    const physical = this.#clock();
    if (physical > this.#wall) {
      this.#wall = physical;
      this.#counter = 0;
    } else if (this.#counter < MAX_COUNTER) {
      this.#counter += 1;
    } else {
      this.#wall += 1;
      this.#counter = 0;
    }
    return formatStamp(this.#wall, this.#counter, this.#node);
  }

  /** Advances past a stamp seen from elsewhere, so the next local stamp orders after it. */
  observe(stamp: string): void {
    const wall = wallOf(stamp);
    const counter = Number.parseInt(stamp.slice(13, 17), 16);
    if (!Number.isFinite(wall) || !Number.isFinite(counter)) return;
    if (wall > this.#wall || (wall === this.#wall && counter > this.#counter)) {
      this.#wall = wall;
      this.#counter = counter;
    }
  }
}

/** The wall-clock part of a stamp, in milliseconds since the epoch (NaN for a malformed stamp). */
export function wallOf(stamp: string): number {
  return Number.parseInt(stamp.slice(0, 12), 16);
}

/**
 * A stamp in the form `formatStamp` writes, optionally followed by `.r` marks (a value re-sealed
 * under a newer key by `encryptedStore`, ordered just after the original write); stores refuse
 * anything else in a delta or a foreign state.
 */
export const STAMP_PATTERN = /^[0-9a-f]{12}\.[0-9a-f]{4}\.[0-9a-f]{1,32}(?:\.r)*$/;

export function formatStamp(wall: number, counter: number, node: string): string {
  return `${wall.toString(16).padStart(12, '0')}.${counter.toString(16).padStart(4, '0')}.${node}`;
}
