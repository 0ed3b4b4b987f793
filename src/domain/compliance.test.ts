import { describe, expect, it } from 'vitest';
import {
  compliancePercent,
  daysOverdue,
  daysOverdueFromDay,
  isOutstanding,
  isPendingJob,
  slaDueDay,
} from './compliance';
import { DEFAULT_SLA, slaDue } from './risk';

const DAY = 86_400_000;

describe('outstanding and pending', () => {
  it.each([
    ['missing', true],
    ['failed', true],
    ['installed', false],
    ['pending_reboot', false],
    ['not_applicable', false],
  ] as const)('patch state %s outstanding: %s', (state, expected) => {
    expect(isOutstanding(state)).toBe(expected);
  });

  it.each([
    ['queued', true],
    ['leased', true],
    ['held', true],
    ['succeeded', false],
    ['failed', false],
    ['unreachable', false],
    ['cancelled', false],
  ] as const)('job state %s pending: %s', (state, expected) => {
    expect(isPendingJob(state)).toBe(expected);
  });
});

describe('compliancePercent', () => {
  it.each([
    [2, 4, 50],
    [1, 3, 33.3],
    [2, 3, 66.7],
    [0, 5, 0],
    [0, 0, 100],
  ])('%i of %i → %s', (compliant, endpoints, expected) => {
    expect(compliancePercent(compliant, endpoints)).toBe(expected);
  });
});

describe('SLA days', () => {
  const kev = { severity: 'critical', knownExploited: true };
  const important = { severity: 'important', knownExploited: false };

  it('is due on the UTC day of detection plus the SLA days, overdue from the next day', () => {
    const detected = new Date('2026-10-31T23:30:00Z');
    expect(new Date(slaDueDay(important, detected, DEFAULT_SLA) * DAY).toISOString()).toBe('2026-11-30T00:00:00.000Z');
    expect(daysOverdue(important, detected, new Date('2026-11-30T23:59:59Z'), DEFAULT_SLA)).toBe(0);
    expect(daysOverdue(important, detected, new Date('2026-12-01T00:00:00Z'), DEFAULT_SLA)).toBe(1);
    expect(daysOverdueFromDay(important, '2026-10-31', new Date('2026-12-01T00:00:00Z'), DEFAULT_SLA)).toBe(1);
  });

  it('agrees with slaDue: the instant a cycle plan shows falls on the due day', () => {
    for (const at of ['2026-10-31T00:00:00Z', '2026-10-31T12:00:00Z', '2026-10-31T23:59:59Z']) {
      for (const p of [kev, important]) {
        const due = Date.parse(slaDue(p as never, at, DEFAULT_SLA));
        expect(Math.floor(due / DAY)).toBe(slaDueDay(p, new Date(at), DEFAULT_SLA));
      }
    }
  });

  it('caps the severity clock with the known-exploited one, never lengthens it', () => {
    const detected = new Date('2026-11-01T08:00:00Z');
    const now = new Date('2026-11-11T08:00:00Z');
    expect(daysOverdue(kev, detected, now, DEFAULT_SLA)).toBe(3); // min(14, 7)
    expect(daysOverdue(kev, detected, now, { ...DEFAULT_SLA, criticalDays: 3, knownExploitedDays: 7 })).toBe(7); // min(3, 7)
    expect(daysOverdue({ severity: 'bogus', knownExploited: false }, detected, now, DEFAULT_SLA)).toBe(10 - 90);
  });
});
