// The numeric flag values of every command: one parser per kind, whose error names the flag, the value and what
// is valid. They throw commander's InvalidArgumentError, which commander reports against the option when the
// parser runs as an option's argParser (`(v) => int('--epochs', v, -Infinity)`), and main.ts like any error when
// an action calls it.
import { InvalidArgumentError } from 'commander';

/**
 * Parses an integer flag value ≥ `min` (default 1; -Infinity: any integer, the range checked elsewhere), or
 * fails naming `flag`; undefined (the flag not given) passes through.
 */
export function int(flag: string, v: string, min?: number): number;
export function int(flag: string, v: string | undefined, min?: number): number | undefined;
export function int(flag: string, v: string | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new InvalidArgumentError(`${flag} expects an integer${min > -Infinity ? ` ≥ ${min}` : ''}, got '${v}'`);
  return n;
}

/** Parses a finite number flag value, or fails naming `flag`; undefined (the flag not given) passes through. */
export function num(flag: string, v: string): number;
export function num(flag: string, v: string | undefined): number | undefined;
export function num(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} expects a number, got '${v}'`);
  return n;
}
