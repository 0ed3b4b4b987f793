/**
 * Maintenance windows: an RRULE read as wall-clock time in an IANA zone, a duration, and blackout dates.
 * DST follows RFC 5545: a wall-clock time that does not exist (02:30 on a spring-forward day) is read
 * with the offset from before the gap (so it happens at 03:30 new time, the same instant); a time that
 * occurs twice (01:30 on a fall-back day) means its first occurrence, once. Durations are real minutes.
 * Pure: time comes in as arguments.
 */
import { DateTime, IANAZone } from 'luxon';
import * as rruleModule from 'rrule';
import { type Options } from 'rrule';

/**
 * rrule ships CommonJS for Node and ESM for bundlers: under Node's ESM loader (tsx, `patchops up`) its
 * named exports are only on `default`; under vitest and the workflow bundler they are on the namespace.
 */
const RRule: typeof rruleModule.RRule =
  rruleModule.RRule ?? (rruleModule as unknown as { default: typeof rruleModule }).default.RRule;
type RRule = rruleModule.RRule;

export interface WindowSpec {
  /** RFC 5545 RRULE, e.g. "FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0" (an optional DTSTART line sets the anchor). */
  rrule: string;
  /** IANA zone the rule's times are read in, e.g. Europe/London. */
  timezone: string;
  durationMinutes: number;
  /** YYYY-MM-DD in the window's zone: no window opens on these dates. */
  blackoutDates: string[];
}

export interface WindowInstance {
  start: Date;
  end: Date;
}

/** Rules without DTSTART are anchored here (a Monday, 00:00 wall-clock), so INTERVAL>1 is stable. */
const DEFAULT_ANCHOR = Date.UTC(2020, 0, 6, 0, 0, 0);
const MAX_DURATION_MINUTES = 7 * 24 * 60;
const SEARCH_YEARS = 5;
const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
const MINUTE = 60_000;
const DAY = 86_400_000;

interface Compiled {
  rule: RRule;
  options: Partial<Options>;
  /** Length of one INTERVAL for rules that can be re-anchored without changing their meaning, else null. */
  periodMs: number | null;
  zone: string;
  durationMs: number;
  blackout: Set<string>;
}

const cache = new Map<string, Compiled>();

function parseRule(text: string): Partial<Options> {
  const cleaned = text
    .trim()
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join('\n');
  return RRule.parseString(cleaned);
}

function compile(spec: WindowSpec): Compiled {
  const key = `${spec.rrule}\u0000${spec.timezone}\u0000${spec.durationMinutes}\u0000${spec.blackoutDates.join(',')}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const problems = validateWindow(spec);
  if (problems.length > 0) throw new RangeError(`maintenance window is not valid: ${problems.join('; ')}`);
  const opts = parseRule(spec.rrule);
  // DTSTART with TZID (or none) is floating wall-clock already (its fields are the local time); a UTC
  // DTSTART (…Z) is an instant, so take its wall-clock in the window's zone.
  const utcStart = /DTSTART:\d{8}T\d{6}Z/i.test(spec.rrule);
  const dtstart = opts.dtstart
    ? utcStart
      ? toFloating(opts.dtstart, spec.timezone)
      : opts.dtstart
    : new Date(DEFAULT_ANCHOR);
  const hasTime = opts.byhour !== undefined && opts.byhour !== null;
  const rule = new RRule({
    ...opts,
    tzid: null,
    dtstart,
    byminute: opts.byminute ?? (hasTime ? 0 : undefined),
    bysecond: opts.bysecond ?? (hasTime ? 0 : undefined),
  });
  const interval = opts.interval ?? 1;
  const unit =
    opts.freq === RRule.HOURLY
      ? 3600_000
      : opts.freq === RRule.DAILY
        ? DAY
        : opts.freq === RRule.WEEKLY
          ? 7 * DAY
          : null;
  const periodMs = unit !== null && !opts.count ? unit * interval : null;
  const compiled: Compiled = {
    rule,
    options: rule.origOptions,
    periodMs,
    zone: spec.timezone,
    durationMs: spec.durationMinutes * MINUTE,
    blackout: new Set(spec.blackoutDates),
  };
  if (cache.size > 500) cache.clear();
  cache.set(key, compiled);
  return compiled;
}

/** Problems with a window, in plain words; empty when it is usable. */
export function validateWindow(spec: WindowSpec): string[] {
  const problems: string[] = [];
  if (typeof spec.timezone !== 'string' || !IANAZone.isValidZone(spec.timezone)) {
    problems.push(
      `timezone "${String(spec.timezone)}" is not an IANA time zone (e.g. Europe/London, America/New_York)`,
    );
  }
  if (
    !Number.isInteger(spec.durationMinutes) ||
    spec.durationMinutes < 1 ||
    spec.durationMinutes > MAX_DURATION_MINUTES
  ) {
    problems.push(
      `durationMinutes must be a whole number from 1 to ${MAX_DURATION_MINUTES} (got ${String(spec.durationMinutes)})`,
    );
  }
  for (const d of spec.blackoutDates ?? []) {
    if (typeof d !== 'string' || !DATE_RE.test(d) || !DateTime.fromISO(d, { zone: 'UTC' }).isValid) {
      problems.push(`blackout date "${String(d)}" is not a date in the form YYYY-MM-DD`);
    }
  }
  if (typeof spec.rrule !== 'string' || spec.rrule.trim() === '') {
    problems.push('rrule is empty: give a recurrence such as FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0');
    return problems;
  }
  let opts: Partial<Options>;
  try {
    opts = parseRule(spec.rrule);
  } catch (e) {
    problems.push(
      `rrule "${spec.rrule}" could not be read (${(e as Error).message}); write it like FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0`,
    );
    return problems;
  }
  if (opts.freq === undefined || opts.freq === null || Number.isNaN(opts.freq)) {
    problems.push(`rrule "${spec.rrule}" has no valid FREQ (use DAILY, WEEKLY, MONTHLY or YEARLY)`);
  } else if (opts.freq === RRule.MINUTELY || opts.freq === RRule.SECONDLY) {
    problems.push(
      'rrule FREQ must be HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY: a maintenance window every minute is not a window',
    );
  }
  if (opts.interval !== undefined && (!Number.isInteger(opts.interval) || opts.interval < 1)) {
    problems.push('rrule INTERVAL must be a whole number of at least 1');
  }
  if (opts.tzid && opts.tzid !== spec.timezone) {
    problems.push(
      `the rule's DTSTART is in ${opts.tzid} but the window's timezone is ${String(spec.timezone)}: use one zone`,
    );
  }
  return problems;
}

/** Floating wall-clock (a Date whose UTC fields are the local time) → the real instant in `zone`. */
function toInstant(floating: Date, zone: string): DateTime {
  const fields = {
    year: floating.getUTCFullYear(),
    month: floating.getUTCMonth() + 1,
    day: floating.getUTCDate(),
    hour: floating.getUTCHours(),
    minute: floating.getUTCMinutes(),
    second: floating.getUTCSeconds(),
  };
  const dt = DateTime.fromObject(fields, { zone });
  // Luxon resolves an ambiguous (fall-back) time to the later offset; RFC 5545 wants the first occurrence.
  const before = DateTime.fromMillis(dt.toMillis() - 3 * 3600_000, { zone });
  if (before.offset > dt.offset) {
    const alt = DateTime.fromMillis(dt.toMillis() - (before.offset - dt.offset) * MINUTE, { zone });
    if (alt.hour === fields.hour && alt.minute === fields.minute && alt.day === fields.day) return alt;
  }
  return dt;
}

/** The instant's wall-clock in `zone`, as a floating Date. */
function toFloating(t: Date, zone: string): Date {
  const l = DateTime.fromJSDate(t, { zone });
  return new Date(Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second, l.millisecond));
}

function localDate(floating: Date): string {
  return floating.toISOString().slice(0, 10);
}

/**
 * The rule with its DTSTART moved forward by whole periods to just before `from`: the same occurrences,
 * without iterating from the anchor year (HOURLY/DAILY/WEEKLY rules without COUNT only).
 */
function ruleNear(c: Compiled, from: Date): RRule {
  if (c.periodMs === null) return c.rule;
  const dtstart = c.rule.options.dtstart.getTime();
  const k = Math.floor((from.getTime() - dtstart) / c.periodMs) - 1;
  if (k <= 0) return c.rule;
  return new RRule({ ...c.options, dtstart: new Date(dtstart + k * c.periodMs) });
}

/**
 * The window that contains `after`, else the next one to open; blackout dates (the local date the
 * window opens on) are skipped. Null when the rule has no further occurrence (COUNT/UNTIL) within
 * five years.
 */
export function nextWindow(spec: WindowSpec, after: Date): WindowInstance | null {
  const c = compile(spec);
  const t = after.getTime();
  // Start early enough to catch a window that opened up to its duration ago (plus a DST day of slack).
  let from = new Date(toFloating(after, c.zone).getTime() - c.durationMs - DAY);
  const limit = from.getTime() + SEARCH_YEARS * 366 * DAY;
  let span = 8 * DAY;
  while (from.getTime() < limit) {
    const to = new Date(Math.min(limit, from.getTime() + span));
    const occurrences = ruleNear(c, from).between(from, to, true);
    for (const occ of occurrences) {
      if (c.blackout.has(localDate(occ))) continue;
      const start = toInstant(occ, c.zone).toMillis();
      const end = start + c.durationMs;
      if (end > t) return { start: new Date(start), end: new Date(end) };
    }
    from = new Date(to.getTime() + 1);
    span = Math.min(span * 2, 400 * DAY);
  }
  return null;
}

/** Is `t` inside an (unblacked-out) window? Start inclusive, end exclusive. */
export function isInside(spec: WindowSpec, t: Date): boolean {
  const w = nextWindow(spec, t);
  return w !== null && w.start.getTime() <= t.getTime() && t.getTime() < w.end.getTime();
}

/** The last moment a job may start in a window: end minus the expected install time, never before start. */
export function latestJobStart(window: WindowInstance, expectedInstallMinutes: number): Date {
  const latest = window.end.getTime() - Math.max(0, expectedInstallMinutes) * MINUTE;
  return new Date(Math.max(window.start.getTime(), latest));
}

/**
 * Of several groups' windows, the earliest next one (for a wave spanning groups); groups without a
 * window (null) are always open: that gives a window from `after` with no practical end.
 */
export function earliestWindow(specs: Array<WindowSpec | null>, after: Date): WindowInstance | null {
  let best: WindowInstance | null = null;
  for (const s of specs) {
    if (s === null) return { start: after, end: new Date(8.64e15) };
    const w = nextWindow(s, after);
    if (w && (!best || w.start.getTime() < best.start.getTime())) best = w;
  }
  return best;
}
