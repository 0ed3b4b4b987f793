import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { earliestWindow, isInside, latestJobStart, nextWindow, validateWindow, type WindowSpec } from './windows';

const spec = (over: Partial<WindowSpec>): WindowSpec => ({
  rrule: 'FREQ=DAILY;BYHOUR=22;BYMINUTE=0',
  timezone: 'UTC',
  durationMinutes: 60,
  blackoutDates: [],
  ...over,
});
const iso = (d: Date | undefined) => d?.toISOString();

describe('nextWindow', () => {
  const cases: Array<{ name: string; spec: WindowSpec; after: string; start: string | null; end?: string }> = [
    {
      name: 'daily UTC, later today',
      spec: spec({}),
      after: '2026-11-27T10:00:00.000Z',
      start: '2026-11-27T22:00:00.000Z',
      end: '2026-11-27T23:00:00.000Z',
    },
    {
      name: 'inside a window returns that window',
      spec: spec({}),
      after: '2026-11-27T22:30:00.000Z',
      start: '2026-11-27T22:00:00.000Z',
    },
    {
      name: 'exactly at the end returns the next one',
      spec: spec({}),
      after: '2026-11-27T23:00:00.000Z',
      start: '2026-11-28T22:00:00.000Z',
    },
    {
      name: 'exactly at the start returns it',
      spec: spec({}),
      after: '2026-11-27T22:00:00.000Z',
      start: '2026-11-27T22:00:00.000Z',
    },
    {
      name: 'window spanning midnight, asked after midnight',
      spec: spec({ durationMinutes: 240 }),
      after: '2026-11-28T01:00:00.000Z',
      start: '2026-11-27T22:00:00.000Z',
      end: '2026-11-28T02:00:00.000Z',
    },
    {
      name: 'weekly Saturday 22:00 London in winter (GMT)',
      spec: spec({ rrule: 'FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0', timezone: 'Europe/London' }),
      after: '2026-11-27T10:00:00.000Z',
      start: '2026-11-28T22:00:00.000Z',
    },
    {
      name: 'weekly Saturday 22:00 London in summer (BST)',
      spec: spec({ rrule: 'FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0', timezone: 'Europe/London' }),
      after: '2026-07-01T00:00:00.000Z',
      start: '2026-07-04T21:00:00.000Z',
    },
    {
      name: 'London 01:30 on spring-forward day (29 Mar 2026) is 02:30 BST, the same instant as 01:30 GMT',
      spec: spec({ rrule: 'FREQ=DAILY;BYHOUR=1;BYMINUTE=30', timezone: 'Europe/London' }),
      after: '2026-03-29T00:00:00.000Z',
      start: '2026-03-29T01:30:00.000Z',
    },
    {
      name: 'London 01:30 the day after spring-forward is BST',
      spec: spec({ rrule: 'FREQ=DAILY;BYHOUR=1;BYMINUTE=30', timezone: 'Europe/London' }),
      after: '2026-03-29T03:00:00.000Z',
      start: '2026-03-30T00:30:00.000Z',
    },
    {
      name: 'London 01:30 on fall-back day (25 Oct 2026) happens once, at the first (BST) occurrence',
      spec: spec({ rrule: 'FREQ=DAILY;BYHOUR=1;BYMINUTE=30', timezone: 'Europe/London' }),
      after: '2026-10-24T23:00:00.000Z',
      start: '2026-10-25T00:30:00.000Z',
    },
    {
      name: 'London fall-back: after the first 01:30 window, the next is the following day (not the repeated 01:30)',
      spec: spec({ rrule: 'FREQ=DAILY;BYHOUR=1;BYMINUTE=30', timezone: 'Europe/London', durationMinutes: 30 }),
      after: '2026-10-25T01:00:00.000Z',
      start: '2026-10-26T01:30:00.000Z',
    },
    {
      name: 'New York 02:30 on spring-forward day (8 Mar 2026) does not exist: 03:30 EDT = 07:30Z',
      spec: spec({ rrule: 'FREQ=DAILY;BYHOUR=2;BYMINUTE=30', timezone: 'America/New_York' }),
      after: '2026-03-08T05:00:00.000Z',
      start: '2026-03-08T07:30:00.000Z',
      end: '2026-03-08T08:30:00.000Z',
    },
    {
      name: 'New York 02:30 the day before spring-forward is EST',
      spec: spec({ rrule: 'FREQ=DAILY;BYHOUR=2;BYMINUTE=30', timezone: 'America/New_York' }),
      after: '2026-03-07T05:00:00.000Z',
      start: '2026-03-07T07:30:00.000Z',
    },
    {
      name: 'New York 02:30 the day after spring-forward is EDT',
      spec: spec({ rrule: 'FREQ=DAILY;BYHOUR=2;BYMINUTE=30', timezone: 'America/New_York' }),
      after: '2026-03-08T12:00:00.000Z',
      start: '2026-03-09T06:30:00.000Z',
    },
    {
      name: 'New York 01:30 on fall-back day (1 Nov 2026) is the first (EDT) occurrence',
      spec: spec({ rrule: 'FREQ=DAILY;BYHOUR=1;BYMINUTE=30', timezone: 'America/New_York' }),
      after: '2026-11-01T00:00:00.000Z',
      start: '2026-11-01T05:30:00.000Z',
      end: '2026-11-01T06:30:00.000Z',
    },
    {
      name: 'New York 01:30 after fall-back day is EST',
      spec: spec({ rrule: 'FREQ=DAILY;BYHOUR=1;BYMINUTE=30', timezone: 'America/New_York' }),
      after: '2026-11-01T07:00:00.000Z',
      start: '2026-11-02T06:30:00.000Z',
    },
    {
      name: 'a 3-hour window across the New York fall-back lasts 3 real hours',
      spec: spec({ rrule: 'FREQ=DAILY;BYHOUR=0;BYMINUTE=30', timezone: 'America/New_York', durationMinutes: 180 }),
      after: '2026-11-01T03:00:00.000Z',
      start: '2026-11-01T04:30:00.000Z',
      end: '2026-11-01T07:30:00.000Z',
    },
    {
      name: 'blackout date skipped (local date of the opening)',
      spec: spec({
        rrule: 'FREQ=WEEKLY;BYDAY=SA;BYHOUR=22',
        timezone: 'America/New_York',
        blackoutDates: ['2026-11-28'],
      }),
      after: '2026-11-27T10:00:00.000Z',
      start: '2026-12-06T03:00:00.000Z',
    },
    {
      name: 'blackout is read in the window zone, not UTC (Saturday 22:00 NY is Sunday in UTC)',
      spec: spec({
        rrule: 'FREQ=WEEKLY;BYDAY=SA;BYHOUR=22',
        timezone: 'America/New_York',
        blackoutDates: ['2026-11-29'],
      }),
      after: '2026-11-27T10:00:00.000Z',
      start: '2026-11-29T03:00:00.000Z',
    },
    {
      name: 'consecutive blackout dates',
      spec: spec({ blackoutDates: ['2026-11-27', '2026-11-28', '2026-11-29'] }),
      after: '2026-11-27T10:00:00.000Z',
      start: '2026-11-30T22:00:00.000Z',
    },
    {
      name: 'every other week, anchored by DTSTART',
      spec: spec({
        rrule: 'DTSTART;TZID=Europe/London:20261107T220000\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=SA',
        timezone: 'Europe/London',
      }),
      after: '2026-11-15T00:00:00.000Z',
      start: '2026-11-21T22:00:00.000Z',
    },
    {
      name: 'a UTC DTSTART is an instant: 22:00Z is 17:00 in New York, every other week',
      spec: spec({ rrule: 'DTSTART:20261107T220000Z\nRRULE:FREQ=WEEKLY;INTERVAL=2', timezone: 'America/New_York' }),
      after: '2026-11-10T00:00:00.000Z',
      start: '2026-11-21T22:00:00.000Z',
    },
    {
      name: 'monthly, second Tuesday (Patch Tuesday) 20:00 Berlin',
      spec: spec({ rrule: 'FREQ=MONTHLY;BYDAY=+2TU;BYHOUR=20;BYMINUTE=0', timezone: 'Europe/Berlin' }),
      after: '2026-11-11T00:00:00.000Z',
      start: '2026-12-08T19:00:00.000Z',
    },
    {
      name: 'ended rule (UNTIL in the past) has no next window',
      spec: spec({ rrule: 'FREQ=DAILY;BYHOUR=22;UNTIL=20250101T000000Z' }),
      after: '2026-11-27T10:00:00.000Z',
      start: null,
    },
  ];
  it.each(cases)('$name', ({ spec: s, after, start, end }) => {
    const w = nextWindow(s, new Date(after));
    if (start === null) {
      expect(w).toBeNull();
      return;
    }
    expect(iso(w?.start)).toBe(start);
    if (end) expect(iso(w?.end)).toBe(end);
    expect(w!.end.getTime() - w!.start.getTime()).toBe(s.durationMinutes * 60_000);
  });

  it('finds a window that opens seconds from now, and is inside it once open', () => {
    const now = new Date();
    const opens = new Date(Math.floor(now.getTime() / 1000) * 1000 + 3000);
    const s = spec({
      rrule: `FREQ=DAILY;BYHOUR=${opens.getUTCHours()};BYMINUTE=${opens.getUTCMinutes()};BYSECOND=${opens.getUTCSeconds()}`,
      durationMinutes: 2,
    });
    const w = nextWindow(s, now);
    expect(iso(w?.start)).toBe(opens.toISOString());
    expect(isInside(s, now)).toBe(false);
    expect(isInside(s, new Date(opens.getTime() + 1000))).toBe(true);
    expect(isInside(s, new Date(opens.getTime() + 120_000))).toBe(false);
  });

  it('refuses an invalid window with the problems', () => {
    expect(() => nextWindow(spec({ timezone: 'Nowhere/Atlantis' }), new Date())).toThrow(/not an IANA time zone/);
  });
});

describe('a year of daily windows across both DST changes', () => {
  it.each([
    ['Europe/London', 1, 30, '2026-03-29'],
    ['America/New_York', 2, 30, '2026-03-08'],
    ['America/New_York', 1, 30, null],
  ] as const)(
    '%s %d:%d: one window a day, at that wall-clock time (gap day %s shifted by the gap)',
    (zone, hour, minute, gapDay) => {
      const s = spec({ rrule: `FREQ=DAILY;BYHOUR=${hour};BYMINUTE=${minute}`, timezone: zone, durationMinutes: 30 });
      const starts = new Set<number>();
      let t = Date.parse('2026-01-01T12:00:00.000Z');
      let lastStart = 0;
      while (t < Date.parse('2027-01-01T00:00:00.000Z')) {
        const w = nextWindow(s, new Date(t))!;
        expect(w.end.getTime()).toBeGreaterThan(t);
        expect(w.start.getTime()).toBeGreaterThanOrEqual(lastStart);
        lastStart = w.start.getTime();
        starts.add(lastStart);
        t += 5 * 3600_000;
      }
      const days = [...starts].map((x) => DateTime.fromMillis(x, { zone }));
      expect(new Set(days.map((d) => d.toISODate())).size).toBe(days.length);
      expect(days.length).toBe(365); // 2 Jan 2026 … 1 Jan 2027
      for (const d of days) {
        const expected = d.toISODate() === gapDay ? [hour + 1, minute] : [hour, minute];
        expect([d.hour, d.minute]).toEqual(expected);
      }
    },
  );
});

describe('isInside', () => {
  const s = spec({
    rrule: 'FREQ=WEEKLY;BYDAY=SA;BYHOUR=22',
    timezone: 'Europe/London',
    durationMinutes: 120,
    blackoutDates: ['2026-12-26'],
  });
  it.each([
    ['2026-11-28T21:59:59.999Z', false],
    ['2026-11-28T22:00:00.000Z', true],
    ['2026-11-28T23:59:59.999Z', true],
    ['2026-11-29T00:00:00.000Z', false],
    ['2026-12-26T23:00:00.000Z', false],
    ['2027-01-02T23:00:00.000Z', true],
  ])('%s → %s', (t, expected) => {
    expect(isInside(s, new Date(t))).toBe(expected);
  });
});

describe('validateWindow', () => {
  it('accepts a good window', () => {
    expect(validateWindow(spec({ timezone: 'America/New_York', blackoutDates: ['2026-12-25'] }))).toEqual([]);
  });
  it.each([
    [spec({ timezone: 'Mars/Olympus' }), 'timezone "Mars/Olympus" is not an IANA time zone'],
    [spec({ durationMinutes: 0 }), 'durationMinutes must be a whole number from 1 to 10080'],
    [spec({ durationMinutes: 90.5 }), 'durationMinutes must be a whole number'],
    [spec({ blackoutDates: ['2026-02-30'] }), 'blackout date "2026-02-30" is not a date'],
    [spec({ blackoutDates: ['25/12/2026'] }), 'blackout date "25/12/2026" is not a date'],
    [spec({ rrule: '' }), 'rrule is empty'],
    [spec({ rrule: 'EVERY SATURDAY' }), 'could not be read'],
    [spec({ rrule: 'FREQ=SOMETIMES' }), 'has no valid FREQ'],
    [spec({ rrule: 'FREQ=MINUTELY' }), 'FREQ must be HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY'],
    [
      spec({ rrule: 'DTSTART;TZID=Europe/Paris:20261107T220000\nRRULE:FREQ=DAILY', timezone: 'Europe/London' }),
      "the rule's DTSTART is in Europe/Paris but the window's timezone is Europe/London",
    ],
  ])('%j → %s', (s, problem) => {
    const problems = validateWindow(s);
    expect(problems.some((p) => p.includes(problem))).toBe(true);
  });
});

describe('latestJobStart', () => {
  const w = { start: new Date('2026-11-28T22:00:00.000Z'), end: new Date('2026-11-29T00:00:00.000Z') };
  it.each([
    [30, '2026-11-28T23:30:00.000Z'],
    [0, '2026-11-29T00:00:00.000Z'],
    [120, '2026-11-28T22:00:00.000Z'],
    [500, '2026-11-28T22:00:00.000Z'],
  ])('%d minutes to install → %s', (minutes, expected) => {
    expect(latestJobStart(w, minutes).toISOString()).toBe(expected);
  });
});

describe('earliestWindow', () => {
  it('takes the earliest of several groups, and a group without a window is open now', () => {
    const after = new Date('2026-11-27T10:00:00.000Z');
    const a = spec({ rrule: 'FREQ=DAILY;BYHOUR=22' });
    const b = spec({ rrule: 'FREQ=DAILY;BYHOUR=12' });
    expect(iso(earliestWindow([a, b], after)?.start)).toBe('2026-11-27T12:00:00.000Z');
    expect(earliestWindow([a, null], after)?.start).toBe(after);
    expect(earliestWindow([], after)).toBeNull();
  });
});

describe('loading', () => {
  it('works under plain Node ESM through tsx, as `patchops up` loads it (rrule is CommonJS there)', async () => {
    const file = fileURLToPath(new URL('./windows.ts', import.meta.url));
    const script = `const m = await import(${JSON.stringify(file)}); process.stdout.write(JSON.stringify(m.nextWindow({ rrule: 'FREQ=DAILY;BYHOUR=22', timezone: 'Europe/London', durationMinutes: 60, blackoutDates: [] }, new Date('2026-07-01T00:00:00Z'))));`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: fileURLToPath(new URL('../..', import.meta.url)) },
    );
    expect(JSON.parse(stdout)).toEqual({ start: '2026-07-01T21:00:00.000Z', end: '2026-07-01T22:00:00.000Z' });
  });
});
