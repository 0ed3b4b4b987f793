import { describe, expect, it } from 'vitest';
import {
  assess,
  DEFAULT_SLA,
  priorityOf,
  riskScore,
  slaDue,
  type AssessInput,
  type EndpointFacts,
  type ExceptionFacts,
  type PatchFacts,
} from './risk';

const patch = (over: Partial<PatchFacts> & { id: string }): PatchFacts => ({
  title: over.id,
  type: 'security',
  severity: 'important',
  cvss: null,
  cves: [],
  knownExploited: false,
  supersededBy: null,
  vendor: 'Microsoft',
  product: 'Windows',
  ...over,
});
const endpoint = (over: Partial<EndpointFacts> & { id: string }): EndpointFacts => ({
  hostname: over.id,
  criticality: 2,
  exposure: 'internal',
  groups: [],
  ...over,
});
const NOW = '2026-11-27T10:00:00.000Z';
const DETECTED = '2026-11-20T00:00:00.000Z';

describe('riskScore', () => {
  const pan = patch({
    id: 'PAN-OS-11.1.2-h3',
    severity: 'critical',
    cvss: 10,
    cves: ['CVE-2024-3400'],
    knownExploited: true,
  });
  const cases: Array<[string, PatchFacts, EndpointFacts, number]> = [
    [
      'known-exploited CVSS 10 on a critical internet-facing firewall',
      pan,
      endpoint({ id: 'fw', criticality: 4, exposure: 'internet' }),
      100,
    ],
    [
      'critical, internal, criticality 1',
      patch({ id: 'a', severity: 'critical' }),
      endpoint({ id: 'e', criticality: 1 }),
      50,
    ],
    [
      'CVSS lifts a low rating',
      patch({ id: 'a', severity: 'low', cvss: 9.8 }),
      endpoint({ id: 'e', criticality: 1 }),
      49,
    ],
    ['low, internal, criticality 1', patch({ id: 'a', severity: 'low' }), endpoint({ id: 'e', criticality: 1 }), 10],
    [
      'important in the DMZ, criticality 3',
      patch({ id: 'a' }),
      endpoint({ id: 'e', criticality: 3, exposure: 'dmz' }),
      56,
    ],
  ];
  it.each(cases)('%s → %d', (_name, p, e, expected) => {
    expect(riskScore(p, e)).toBe(expected);
  });

  it('is monotonic in criticality and exposure and stays within 0..100', () => {
    const p = patch({ id: 'a', severity: 'moderate', cvss: 5 });
    const scores = [1, 2, 3, 4].map((c) => riskScore(p, endpoint({ id: 'e', criticality: c })));
    expect([...scores].sort((a, b) => a - b)).toEqual(scores);
    expect(riskScore(p, endpoint({ id: 'e', exposure: 'internet' }))).toBeGreaterThan(
      riskScore(p, endpoint({ id: 'e', exposure: 'dmz' })),
    );
    expect(
      riskScore(
        patch({ id: 'x', cvss: 99, knownExploited: true, severity: 'critical' }),
        endpoint({ id: 'e', criticality: 9, exposure: 'internet' }),
      ),
    ).toBe(100);
    expect(
      riskScore(patch({ id: 'x', severity: 'unspecified', cvss: -3 }), endpoint({ id: 'e', criticality: -1 })),
    ).toBeGreaterThanOrEqual(0);
  });
});

describe('priorityOf', () => {
  it.each([
    [100, false, 'P1'],
    [75, false, 'P1'],
    [74, false, 'P2'],
    [50, false, 'P2'],
    [49, false, 'P3'],
    [30, false, 'P3'],
    [29, false, 'P4'],
    [10, true, 'P1'],
  ] as const)('%d, known exploited %s → %s', (score, kev, expected) => {
    expect(priorityOf(score, kev)).toBe(expected);
  });
});

describe('slaDue', () => {
  it.each([
    ['critical', false, '2026-12-04T00:00:00.000Z'],
    ['important', false, '2026-12-20T00:00:00.000Z'],
    ['moderate', false, '2027-01-19T00:00:00.000Z'],
    ['low', false, '2027-02-18T00:00:00.000Z'],
    ['unspecified', false, '2027-02-18T00:00:00.000Z'],
    ['low', true, '2026-11-27T00:00:00.000Z'],
    ['critical', true, '2026-11-27T00:00:00.000Z'],
  ] as const)('%s, known exploited %s → %s', (severity, knownExploited, expected) => {
    expect(slaDue({ severity, knownExploited }, DETECTED, DEFAULT_SLA)).toBe(expected);
  });

  it('never lengthens the clock for known-exploited', () => {
    const sla = { ...DEFAULT_SLA, criticalDays: 3, knownExploitedDays: 7 };
    expect(slaDue({ severity: 'critical', knownExploited: true }, DETECTED, sla)).toBe('2026-11-23T00:00:00.000Z');
  });

  it('refuses a bad date', () => {
    expect(() => slaDue({ severity: 'low', knownExploited: false }, 'yesterday', DEFAULT_SLA)).toThrow(
      /not an ISO date-time/,
    );
  });
});

describe('assess', () => {
  const fw = endpoint({ id: 'fw-1', hostname: 'fw-1', criticality: 4, exposure: 'internet', groups: ['edge'] });
  const web = endpoint({ id: 'web-1', criticality: 2, groups: ['web'] });
  const db = endpoint({ id: 'db-1', criticality: 3, groups: ['db'] });
  const base = (over: Partial<AssessInput>): AssessInput => ({
    patches: [],
    missing: [],
    endpoints: [fw, web, db],
    exceptions: [],
    sla: DEFAULT_SLA,
    now: NOW,
    ...over,
  });
  const miss = (patchId: string, ...endpointIds: string[]) =>
    endpointIds.map((endpointId) => ({ endpointId, patchId, detectedAt: DETECTED }));
  const exc = (over: Partial<ExceptionFacts> & { code: string }): ExceptionFacts => ({
    reason: 'vendor says wait',
    expiresAt: '2027-01-10T00:00:00.000Z',
    ...over,
  });

  it('gives the P1 reason for a known-exploited CVE on an internet-facing group', () => {
    const p = patch({ id: 'PAN-OS-h3', severity: 'critical', cvss: 10, cves: ['CVE-2024-3400'], knownExploited: true });
    const r = assess(
      base({ patches: [p], missing: miss('PAN-OS-h3', 'fw-1'), endpoints: [{ ...fw, criticality: 3 }] }),
    );
    expect(r.patches).toEqual([
      {
        patchId: 'PAN-OS-h3',
        decision: 'include',
        priority: 'P1',
        riskScore: 94,
        slaDue: '2026-11-27T00:00:00.000Z',
        endpointIds: ['fw-1'],
        skippedEndpointIds: [],
        reason: 'P1: known exploited CVE-2024-3400, CVSS 10.0, internet-facing group',
      },
    ]);
    expect(r.reasons).toEqual(['PAN-OS-h3: P1: known exploited CVE-2024-3400, CVSS 10.0, internet-facing group']);
  });

  it('drops a superseded patch when the successor is known', () => {
    const r = assess(
      base({
        patches: [patch({ id: 'KB5031234', supersededBy: 'KB5034441' }), patch({ id: 'KB5034441' })],
        missing: [...miss('KB5031234', 'web-1'), ...miss('KB5034441', 'web-1')],
      }),
    );
    const old = r.patches.find((p) => p.patchId === 'KB5031234')!;
    expect(old).toMatchObject({ decision: 'dropped', reason: 'dropped: superseded by KB5034441', endpointIds: [] });
    expect(r.patches.find((p) => p.patchId === 'KB5034441')!.decision).toBe('include');
  });

  it('follows a supersedence chain to the furthest known successor and keeps a patch whose successor is unknown', () => {
    const r = assess(
      base({
        patches: [
          patch({ id: 'A', supersededBy: 'B' }),
          patch({ id: 'B', supersededBy: 'C' }),
          patch({ id: 'C', supersededBy: 'NOT-IN-CATALOG' }),
          patch({ id: 'X', supersededBy: 'Y' }),
        ],
        missing: [...miss('A', 'web-1'), ...miss('X', 'web-1')],
      }),
    );
    expect(r.patches.find((p) => p.patchId === 'A')!.reason).toBe('dropped: superseded by C');
    expect(r.patches.find((p) => p.patchId === 'X')!.decision).toBe('include');
  });

  it('skips a patch under a patch-level exception', () => {
    const r = assess(
      base({
        patches: [patch({ id: 'KB1' })],
        missing: miss('KB1', 'web-1', 'db-1'),
        exceptions: [exc({ code: 'EXC-12', patchId: 'KB1' })],
      }),
    );
    expect(r.patches[0]).toMatchObject({
      decision: 'skipped',
      reason: 'skipped: exception EXC-12 until 2027-01-10',
      endpointIds: [],
      skippedEndpointIds: ['web-1', 'db-1'],
    });
  });

  it('ignores expired exceptions', () => {
    const r = assess(
      base({
        patches: [patch({ id: 'KB1' })],
        missing: miss('KB1', 'web-1'),
        exceptions: [exc({ code: 'EXC-1', patchId: 'KB1', expiresAt: '2026-11-01T00:00:00.000Z' })],
      }),
    );
    expect(r.patches[0]!.decision).toBe('include');
  });

  it('skips only the endpoints under an endpoint-, group- or pair-level exception', () => {
    const r = assess(
      base({
        patches: [patch({ id: 'KB1' }), patch({ id: 'KB2' })],
        missing: [...miss('KB1', 'fw-1', 'web-1', 'db-1'), ...miss('KB2', 'fw-1', 'web-1', 'db-1')],
        exceptions: [
          exc({ code: 'EXC-2', endpointId: 'web-1' }),
          exc({ code: 'EXC-3', groupName: 'db', patchId: 'KB1' }),
          exc({ code: 'EXC-4', endpointId: 'fw-1', patchId: 'KB2' }),
        ],
      }),
    );
    const kb1 = r.patches.find((p) => p.patchId === 'KB1')!;
    const kb2 = r.patches.find((p) => p.patchId === 'KB2')!;
    expect(kb1).toMatchObject({ decision: 'include', endpointIds: ['fw-1'], skippedEndpointIds: ['web-1', 'db-1'] });
    expect(kb1.reason).toMatch(/; 2 endpoints skipped by exceptions EXC-2 until 2027-01-10, EXC-3 until 2027-01-10$/);
    expect(kb2).toMatchObject({ decision: 'include', endpointIds: ['db-1'], skippedEndpointIds: ['fw-1', 'web-1'] });
  });

  it('applies the policy filters with a reason, and includePatches wins over them', () => {
    const r = assess(
      base({
        patches: [
          patch({ id: 'F1', type: 'feature' }),
          patch({ id: 'S1', severity: 'low' }),
          patch({ id: 'V1', vendor: 'Adobe' }),
          patch({ id: 'E1' }),
          patch({ id: 'I1', type: 'feature', severity: 'low' }),
          patch({ id: 'OK', severity: 'critical' }),
        ],
        missing: ['F1', 'S1', 'V1', 'E1', 'I1', 'OK'].flatMap((id) => miss(id, 'web-1')),
        filters: {
          types: ['security'],
          severities: ['critical', 'important'],
          vendors: ['microsoft'],
          excludePatches: ['E1'],
          includePatches: ['I1'],
        },
      }),
    );
    const by = new Map(r.patches.map((p) => [p.patchId, p]));
    expect(by.get('F1')!.reason).toBe("dropped: type feature is not in the policy's types (security)");
    expect(by.get('S1')!.reason).toBe("dropped: severity low is not in the policy's severities (critical, important)");
    expect(by.get('V1')!.reason).toBe("dropped: vendor Adobe is not in the policy's vendors");
    expect(by.get('E1')!.reason).toBe('dropped: excluded by the policy');
    expect(by.get('I1')!.decision).toBe('include');
    expect(by.get('OK')!.decision).toBe('include');
    expect(r.patches.map((p) => p.decision)).toEqual([
      'include',
      'include',
      'dropped',
      'dropped',
      'dropped',
      'dropped',
    ]);
  });

  it('takes the highest risk over endpoints and the earliest detection for the SLA', () => {
    const r = assess(
      base({
        patches: [patch({ id: 'KB1', severity: 'critical' })],
        missing: [
          { endpointId: 'web-1', patchId: 'KB1', detectedAt: '2026-11-25T00:00:00.000Z' },
          { endpointId: 'fw-1', patchId: 'KB1', detectedAt: '2026-11-21T00:00:00.000Z' },
        ],
      }),
    );
    expect(r.patches[0]).toMatchObject({
      riskScore: riskScore(patch({ id: 'KB1', severity: 'critical' }), fw),
      priority: 'P1',
      slaDue: '2026-12-05T00:00:00.000Z',
    });
    expect(r.patches[0]!.reason).toBe('P1: critical severity, internet-facing group, business-critical endpoint');
  });

  it('notes missing rows for patches not in the catalog', () => {
    const r = assess(base({ missing: miss('GHOST', 'web-1') }));
    expect(r.patches).toEqual([]);
    expect(r.reasons[0]).toMatch(/ignored 1 patch id\(s\) missing from the catalog: GHOST/);
  });

  it('handles 20,000 endpoints × 50 patches', () => {
    const endpoints = Array.from({ length: 20_000 }, (_, i) =>
      endpoint({
        id: `ep-${i}`,
        criticality: (i % 4) + 1,
        exposure: i % 10 === 0 ? 'internet' : 'internal',
        groups: [`g${i % 20}`],
      }),
    );
    const patches = Array.from({ length: 50 }, (_, j) =>
      patch({
        id: `KB${j}`,
        severity: (['critical', 'important', 'moderate', 'low'] as const)[j % 4],
        cvss: j % 3 === 0 ? 9.1 : null,
        knownExploited: j === 7,
        supersededBy: j === 49 ? 'KB48' : null,
      }),
    );
    const missing = endpoints.flatMap((e) =>
      patches.map((p) => ({ endpointId: e.id, patchId: p.id, detectedAt: DETECTED })),
    );
    const r = assess(
      base({
        patches,
        missing,
        endpoints,
        exceptions: [exc({ code: 'EXC-9', groupName: 'g3' }), exc({ code: 'EXC-10', patchId: 'KB5' })],
      }),
    );
    expect(r.patches).toHaveLength(50);
    const included = r.patches.filter((p) => p.decision === 'include');
    expect(included).toHaveLength(48);
    for (const p of included) expect(p.endpointIds).toHaveLength(19_000);
    expect(r.patches.find((p) => p.patchId === 'KB7')!.priority).toBe('P1');
  });
});
