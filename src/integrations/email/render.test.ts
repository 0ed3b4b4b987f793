import { describe, expect, it } from 'vitest';
import { renderDigest, type ComplianceDigest } from './render';

const digest = (missingBySeverity: Record<string, number>): ComplianceDigest => ({
  generatedAt: '2026-12-05T06:00:00.000Z',
  periodStart: '2026-11-28',
  endpoints: 10,
  compliantEndpoints: 4,
  compliancePercent: 40,
  missingBySeverity,
  topMissing: [],
  cycles: [],
});

describe('renderDigest', () => {
  it('lists missing patches most severe first by the domain ranking, a vendor word as its severity, an unknown word with unspecified', () => {
    const r = renderDigest(
      digest({ low: 1, unspecified: 2, weird: 7, critical: 3, medium: 6, moderate: 4, important: 5 }),
      { publicUrl: 'http://x' },
    );
    expect(r.text).toContain(
      'Missing patches by severity: 3 critical, 5 important, 6 medium, 4 moderate, 1 low, 2 unspecified, 7 weird',
    );
    expect(r.chart?.labels).toEqual(['critical', 'important', 'medium', 'moderate', 'low', 'unspecified', 'weird']);
  });
});
