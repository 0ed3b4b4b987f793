/**
 * Request input rules shared by every route: text may not hold NUL bytes (PostgreSQL text cannot), and
 * numbers from query strings are clamped to what the route can use, so `page=1e300` is the last page
 * rather than a database error.
 */
import { Readable } from 'node:stream';
import { CodedError, ErrorCode } from '../domain/errors';

/**
 * Where in a value a NUL byte hides (`body.hostname`, `query.q`), or null when there is none. A stream (the body of
 * a route that takes raw bytes, such as a file upload) is not a parsed value: it is passed through unread.
 */
export function nulPath(value: unknown, at: string, depth = 0): string | null {
  // The common case, no NUL anywhere, walks without building a path string per field (a 200-patch scan result is
  // thousands of fields); the path is built only when there is one to name.
  return hasNul(value, depth) ? pathOfNul(value, at, depth) : null;
}

function hasNul(value: unknown, depth: number): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Buffer.isBuffer(value)) return value.includes(0);
  if (value instanceof Readable) return false;
  if (!value || typeof value !== 'object' || depth > 64) return false;
  for (const k in value) {
    if (!Object.prototype.hasOwnProperty.call(value, k)) continue;
    if (k.includes('\u0000') || hasNul((value as Record<string, unknown>)[k], depth + 1)) return true;
  }
  return false;
}

function pathOfNul(value: unknown, at: string, depth: number): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? at : null;
  if (Buffer.isBuffer(value)) return value.includes(0) ? at : null;
  if (value instanceof Readable) return null;
  if (!value || typeof value !== 'object' || depth > 64) return null;
  for (const [k, v] of Object.entries(value)) {
    if (k.includes('\u0000')) return `${at}.${k.split('\u0000').join('\\0')}`;
    const found = pathOfNul(v, `${at}.${k}`, depth + 1);
    if (found) return found;
  }
  return null;
}

/** Throws INVALID_INPUT naming the first place in `value` that holds a NUL byte. */
export function refuseNul(value: unknown, at: string): void {
  const found = nulPath(value, at);
  if (found)
    throw new CodedError(
      ErrorCode.InvalidInput,
      `${found} contains a NUL byte, which no field accepts: remove it and retry`,
    );
}

/**
 * A whole number from a query parameter, clamped to [min, max]: absent or not a number gives `fallback`,
 * a fraction is rounded down, anything beyond the bounds (1e300, -5, Infinity) is the nearest bound.
 */
export function clampedInt(raw: unknown, o: { min: number; max: number; fallback: number }): number {
  if (typeof raw !== 'string' || raw.trim() === '') return o.fallback;
  const n = Number(raw);
  if (Number.isNaN(n)) return o.fallback;
  return Math.min(o.max, Math.max(o.min, Math.floor(n)));
}

/**
 * A date from a query or form field: YYYY-MM-DD (start or end of that day, UTC) or an ISO 8601 time.
 * Empty gives undefined; anything else, or a year outside 1970–9999, is INVALID_INPUT naming the field.
 */
export function dateParam(raw: unknown, name: string, edge: 'start' | 'end' = 'start'): Date | undefined {
  if (raw === undefined || raw === '') return undefined;
  const v = typeof raw === 'string' ? raw.trim() : '';
  const day = /^\d{4}-\d{2}-\d{2}$/.test(v);
  const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/.test(v);
  const d = day
    ? new Date(`${v}T${edge === 'end' ? '23:59:59.999' : '00:00:00'}Z`)
    : iso
      ? new Date(v)
      : new Date(Number.NaN);
  const year = d.getUTCFullYear();
  if (Number.isNaN(d.getTime()) || year < 1970 || year > 9999) {
    throw new CodedError(ErrorCode.InvalidInput, `${name} "${v.slice(0, 40)}" is not a date: use YYYY-MM-DD`);
  }
  return d;
}
