/** Firmware as a patch type: its own policy yes (filters.firmware), risk and approval as for any patch. */
import { describe, expect, it } from 'vitest';
import { needsHumanApproval } from './approval';
import { isPatchType, normalizePatchType, normalizeSeverity } from './patch';
import { parsePolicy, policyProblems } from './policy';
import { assess, DEFAULT_SLA, type PatchFacts } from './risk';

const fw = (over: Partial<PatchFacts> = {}): PatchFacts => ({
  id: 'firmware:com.lenovo.ThinkPadN2JET.firmware:1.54',
  title: 'System Firmware 1.53 → 1.54',
  type: 'firmware',
  severity: 'important',
  cvss: null,
  cves: ['CVE-2022-21894'],
  knownExploited: false,
  supersededBy: null,
  vendor: 'Lenovo',
  product: 'System Firmware',
  rebootRequired: true,
  ...over,
});
const sec: PatchFacts = { ...fw(), id: 'KB1', type: 'security', vendor: 'Microsoft', product: 'Windows' };
const run = (filters: Record<string, unknown>) =>
  assess({
    patches: [fw(), sec],
    missing: [fw().id, 'KB1'].map((patchId) => ({ endpointId: 'e1', patchId, detectedAt: '2026-11-20T00:00:00.000Z' })),
    endpoints: [{ id: 'e1', hostname: 'e1', criticality: 2, exposure: 'internal', groups: [] }],
    exceptions: [],
    sla: DEFAULT_SLA,
    now: '2026-11-27T00:00:00.000Z',
    filters: parsePolicy({ name: 'p', filters }).filters,
  });

describe('firmware patch type', () => {
  it("is a patch type, and vendors' words for it map onto it", () => {
    expect(isPatchType('firmware')).toBe(true);
    expect(normalizePatchType('Firmware')).toBe('firmware');
    expect(normalizePatchType('firmware update')).toBe('firmware');
  });

  it('takes LVFS urgency words as severity (critical, high, medium, low)', () => {
    expect(['critical', 'high', 'medium', 'low', 'unknown'].map((w) => normalizeSeverity('vendor', w))).toEqual([
      'critical',
      'important',
      'moderate',
      'low',
      'unspecified',
    ]);
  });

  it('is left out by a policy that does not say filters.firmware: true, with the reason', () => {
    const r = run({});
    expect(r.patches.find((p) => p.patchId === fw().id)).toMatchObject({
      decision: 'dropped',
      reason: 'dropped: firmware, and the policy does not deploy firmware (filters.firmware is not true)',
    });
    expect(r.patches.find((p) => p.patchId === 'KB1')!.decision).toBe('include');
  });

  it('is not let in by includePatches alone: firmware needs its own yes', () => {
    const r = run({ includePatches: [fw().id] });
    expect(r.patches.find((p) => p.patchId === fw().id)!.decision).toBe('dropped');
  });

  it('is assessed like any patch once the policy deploys firmware (risk, priority, SLA)', () => {
    const r = run({ firmware: true });
    const p = r.patches.find((x) => x.patchId === fw().id)!;
    expect(p).toMatchObject({
      decision: 'include',
      priority: 'P3',
      endpointIds: ['e1'],
      slaDue: '2026-12-20T00:00:00.000Z',
    });
    expect(p.reason).toBe('P3: important severity CVE-2022-21894');
  });

  it('can be the only type a policy deploys', () => {
    const r = run({ firmware: true, types: ['firmware'] });
    expect(r.patches.map((p) => [p.patchId, p.decision])).toEqual([
      [fw().id, 'include'],
      ['KB1', 'dropped'],
    ]);
  });

  it('refuses a policy that names firmware in types without filters.firmware', () => {
    expect(policyProblems({ name: 'p', filters: { types: ['firmware'] } })).toEqual([
      'filters.firmware: filters.types names firmware: set filters.firmware to true as well to deploy firmware',
    ]);
    expect(policyProblems({ name: 'p', filters: { firmware: 'yes' } })).toEqual([
      'filters.firmware: expected true or false',
    ]);
  });

  it('needs a human approval unless the policy auto-approves firmware', () => {
    const policy = parsePolicy({ name: 'p', filters: { firmware: true } });
    expect(needsHumanApproval(policy, [{ type: 'firmware', severity: 'low' }])).toBe(true);
    expect(
      needsHumanApproval(parsePolicy({ name: 'p', autoApprove: { types: ['firmware'] } }), [
        { type: 'firmware', severity: 'low' },
      ]),
    ).toBe(false);
  });
});
