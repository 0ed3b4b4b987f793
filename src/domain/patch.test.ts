import { describe, expect, it } from 'vitest';
import {
  maxSeverity,
  moreCautiousType,
  normalizePatchType,
  normalizeSeverity,
  PATCH_TYPES,
  resolveSupersedence,
  SEVERITY_RANK,
  severityFromCvss,
  type PatchType,
  type Severity,
  type SeveritySource,
} from './patch';

describe('normalizeSeverity', () => {
  const cases: Array<[SeveritySource, string | number | undefined, Severity]> = [
    ['msrc', 'Critical', 'critical'],
    ['msrc', 'Important', 'important'],
    ['msrc', 'Moderate', 'moderate'],
    ['msrc', 'Low', 'low'],
    ['msrc', '', 'unspecified'],
    ['debian', 'emergency', 'critical'],
    ['debian', 'high', 'important'],
    ['debian', 'medium', 'moderate'],
    ['debian', 'low', 'low'],
    ['debian', 'unimportant', 'low'],
    ['debian', 'not yet assigned', 'unspecified'],
    ['debian', 'low**', 'unspecified'],
    ['ubuntu', 'critical', 'critical'],
    ['ubuntu', 'high', 'important'],
    ['ubuntu', 'Medium', 'moderate'],
    ['ubuntu', 'low', 'low'],
    ['ubuntu', 'negligible', 'low'],
    ['redhat', 'Critical', 'critical'],
    ['redhat', 'Important', 'important'],
    ['redhat', 'Moderate', 'moderate'],
    ['redhat', 'Low', 'low'],
    ['suse', 'important', 'important'],
    ['suse', 'moderate', 'moderate'],
    ['apple', 9.8, 'critical'],
    ['apple', '7.5', 'important'],
    ['apple', undefined, 'unspecified'],
    ['cvss', 9.0, 'critical'],
    ['cvss', 8.99, 'important'],
    ['cvss', 7.0, 'important'],
    ['cvss', 6.9, 'moderate'],
    ['cvss', 4.0, 'moderate'],
    ['cvss', 3.9, 'low'],
    ['cvss', 0.1, 'low'],
    ['cvss', 0, 'unspecified'],
    ['vendor', 'Urgent', 'critical'],
    ['vendor', 'HIGH', 'important'],
    ['vendor', 'whatever', 'unspecified'],
  ];
  it.each(cases)('%s %j → %s', (source, word, expected) => {
    expect(normalizeSeverity(source, word)).toBe(expected);
  });

  it('ranks critical highest and unspecified lowest', () => {
    const sorted = (Object.keys(SEVERITY_RANK) as Severity[]).sort((a, b) => SEVERITY_RANK[b] - SEVERITY_RANK[a]);
    expect(sorted).toEqual(['critical', 'important', 'moderate', 'low', 'unspecified']);
    expect(maxSeverity(['low', 'important', 'moderate'])).toBe('important');
    expect(maxSeverity([])).toBe('unspecified');
    expect(severityFromCvss(null)).toBe('unspecified');
  });
});

describe('normalizePatchType', () => {
  const cases: Array<[string, PatchType]> = [
    ['Security Updates', 'security'],
    ['Critical Updates', 'critical'],
    ['Definition Updates', 'definition'],
    ['Update Rollups', 'update_rollup'],
    ['Service Packs', 'service_pack'],
    ['Feature Packs', 'feature'],
    ['Tools', 'tool'],
    ['Updates', 'update'],
    ['Hotfix', 'hotfix'],
    ['RHSA', 'security'],
    ['RHBA', 'bug_fix'],
    ['RHEA', 'feature'],
    ['RHSA-2024:1234', 'security'],
    ['RHBA-2024:0001', 'bug_fix'],
    ['security', 'security'],
    ['recommended', 'bug_fix'],
    ['optional', 'feature'],
    ['feature', 'feature'],
    ['bugfix', 'bug_fix'],
    ['enhancement', 'feature'],
    ['update_rollup', 'update_rollup'],
    ['something new', 'update'],
  ];
  it.each(cases)('%j → %s', (word, expected) => {
    expect(normalizePatchType(word)).toBe(expected);
  });

  it('has the eleven types (the ten Windows-style classes and firmware)', () => {
    expect(PATCH_TYPES).toHaveLength(11);
    expect(new Set(PATCH_TYPES).size).toBe(11);
  });
});

describe('resolveSupersedence', () => {
  const cases: Array<{
    name: string;
    patches: Array<{ id: string; supersededBy?: string | null }>;
    expected: Record<string, string>;
  }> = [
    { name: 'nothing superseded', patches: [{ id: 'A' }, { id: 'B', supersededBy: null }], expected: {} },
    { name: 'one step', patches: [{ id: 'A', supersededBy: 'B' }, { id: 'B' }], expected: { A: 'B' } },
    {
      name: 'chain to the final successor',
      patches: [
        { id: 'A', supersededBy: 'B' },
        { id: 'B', supersededBy: 'C' },
        { id: 'C', supersededBy: 'D' },
      ],
      expected: { A: 'D', B: 'D', C: 'D' },
    },
    {
      name: 'successor not in the list',
      patches: [{ id: 'KB1', supersededBy: 'KB5034441' }],
      expected: { KB1: 'KB5034441' },
    },
    { name: 'self reference ignored', patches: [{ id: 'A', supersededBy: 'A' }], expected: {} },
    {
      name: 'loop is not resolved',
      patches: [
        { id: 'A', supersededBy: 'B' },
        { id: 'B', supersededBy: 'A' },
        { id: 'X', supersededBy: 'A' },
        { id: 'Y', supersededBy: 'Z' },
      ],
      expected: { Y: 'Z' },
    },
  ];
  it.each(cases)('$name', ({ patches, expected }) => {
    expect(Object.fromEntries(resolveSupersedence(patches))).toEqual(expected);
  });

  it('resolves a long chain in any input order', () => {
    const n = 5000;
    const patches = Array.from({ length: n }, (_, i) => ({
      id: `P${i}`,
      supersededBy: i < n - 1 ? `P${i + 1}` : null,
    })).reverse();
    const map = resolveSupersedence(patches);
    expect(map.size).toBe(n - 1);
    expect(map.get('P0')).toBe(`P${n - 1}`);
    expect(map.get(`P${n - 2}`)).toBe(`P${n - 1}`);
  });
});

describe('moreCautiousType', () => {
  it.each([
    ['definition', 'security', 'security'],
    ['security', 'definition', 'security'],
    ['tool', 'bug_fix', 'bug_fix'],
    ['update_rollup', 'update', 'update_rollup'],
    ['security', 'firmware', 'security'],
    ['firmware', 'security', 'firmware'],
    ['definition', 'not-a-type', 'definition'],
  ])('%s, then a report of %s: %s', (current, reported, kept) => {
    expect(moreCautiousType(current, reported)).toBe(kept);
  });
});
