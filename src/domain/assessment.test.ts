import { describe, expect, it } from 'vitest';
import { REASONS_CAP, TOP_PATCHES, summarizeAssessment, type AssessmentSummaryInput } from './assessment';
import { DEFAULT_POLICY } from './policy';
import type { PatchType, Severity } from './patch';
import type { AssessedPatch } from './risk';

type Facts = AssessmentSummaryInput['patches'][number];

function patch(id: string, o: Partial<Facts> = {}): Facts {
  return {
    id,
    title: `Update ${id}`,
    type: 'security',
    severity: 'moderate' as Severity,
    cvss: null,
    cves: [],
    knownExploited: false,
    ...o,
  };
}

function assessed(patchId: string, o: Partial<AssessedPatch> = {}): AssessedPatch {
  return {
    patchId,
    decision: 'include',
    priority: 'P3',
    riskScore: 40,
    slaDue: '2026-12-31T00:00:00.000Z',
    endpointIds: ['e1'],
    skippedEndpointIds: [],
    reason: `${patchId} is missing`,
    ...o,
  };
}

const endpoints = [
  { id: 'e1', criticality: 2 },
  { id: 'e2', criticality: 3 },
  { id: 'e9', criticality: 4 },
];

describe('summarizeAssessment', () => {
  it('counts only included patches that reach an endpoint, by severity and by type, and the endpoints they reach', () => {
    const s = summarizeAssessment({
      assessed: {
        patches: [
          assessed('P-1', { endpointIds: ['e1', 'e2'] }),
          assessed('P-2', { endpointIds: ['e2'] }),
          assessed('P-3', { decision: 'dropped', endpointIds: [] }),
          assessed('P-4', { decision: 'skipped', endpointIds: [], skippedEndpointIds: ['e1'] }),
          assessed('P-5', { endpointIds: [] }),
        ],
        reasons: [],
      },
      patches: [
        patch('P-1', { severity: 'important' }),
        patch('P-2', { type: 'bug_fix' }),
        patch('P-3'),
        patch('P-4'),
        patch('P-5'),
      ],
      endpoints,
      policy: DEFAULT_POLICY,
    });
    expect(s).toMatchObject({
      endpoints: 2,
      patches: 2,
      bySeverity: { important: 1, moderate: 1 },
      byType: { security: 1, bug_fix: 1 },
    });
  });

  it.each<{
    name: string;
    severity: Severity;
    knownExploited: boolean;
    targets: string[];
    risk: string;
    approvals: number;
  }>([
    {
      name: 'a moderate patch on ordinary endpoints',
      severity: 'moderate',
      knownExploited: false,
      targets: ['e1'],
      risk: 'low',
      approvals: 1,
    },
    {
      name: 'a critical patch',
      severity: 'critical',
      knownExploited: false,
      targets: ['e1'],
      risk: 'high',
      approvals: 1,
    },
    {
      name: 'a known-exploited critical patch',
      severity: 'critical',
      knownExploited: true,
      targets: ['e1'],
      risk: 'critical',
      approvals: 2,
    },
    {
      name: 'an important patch on a business-critical endpoint',
      severity: 'important',
      knownExploited: false,
      targets: ['e9'],
      risk: 'high',
      approvals: 1,
    },
  ])('rates $name $risk (quorum $approvals)', ({ severity, knownExploited, targets, risk, approvals }) => {
    const s = summarizeAssessment({
      assessed: { patches: [assessed('P-1', { endpointIds: targets })], reasons: [] },
      patches: [patch('P-1', { severity, knownExploited })],
      endpoints,
      policy: DEFAULT_POLICY,
    });
    expect(s.risk).toBe(risk);
    expect(s.approvalsNeeded).toBe(approvals);
  });

  it('takes criticality from the endpoints the patches go to, not every endpoint assessed', () => {
    const s = summarizeAssessment({
      assessed: {
        patches: [
          assessed('P-1', { endpointIds: ['e1'] }),
          assessed('P-2', { decision: 'dropped', endpointIds: ['e9'] }),
        ],
        reasons: [],
      },
      patches: [patch('P-1', { severity: 'important' }), patch('P-2', { severity: 'important' })],
      endpoints,
      policy: DEFAULT_POLICY,
    });
    expect(s.risk).toBe('moderate');
  });

  it(`lists the top ${TOP_PATCHES} included patches by risk score (then id), with CVSS only when known`, () => {
    const ids = ['P-a', 'P-b', 'P-c', 'P-d', 'P-e', 'P-f', 'P-g'];
    const scores = [10, 90, 50, 50, 70, 20, 95];
    const s = summarizeAssessment({
      assessed: {
        patches: [
          ...ids.map((id, i) => assessed(id, { riskScore: scores[i]!, endpointIds: i === 1 ? ['e1', 'e2'] : ['e1'] })),
          assessed('P-z', { decision: 'dropped', riskScore: 100, endpointIds: [] }),
        ],
        reasons: [],
      },
      patches: [
        ...ids.map((id) => patch(id, id === 'P-b' ? { cvss: 9.8, cves: ['CVE-2026-0001'], knownExploited: true } : {})),
        patch('P-z'),
      ],
      endpoints,
      policy: DEFAULT_POLICY,
    });
    expect(s.topPatches.map((p) => p.patchId)).toEqual(['P-g', 'P-b', 'P-e', 'P-c', 'P-d']);
    expect(s.topPatches[1]).toEqual({
      patchId: 'P-b',
      title: 'Update P-b',
      severity: 'moderate',
      type: 'security',
      cvss: 9.8,
      cves: ['CVE-2026-0001'],
      knownExploited: true,
      endpoints: 2,
    });
    expect(s.topPatches[0]).not.toHaveProperty('cvss');
  });

  it(`gives each patch's reason first, then the assessment's own, capped at ${REASONS_CAP}`, () => {
    const few = summarizeAssessment({
      assessed: {
        patches: [
          assessed('P-1', { reason: 'P2: critical' }),
          assessed('P-2', { decision: 'dropped', endpointIds: [], reason: 'superseded by P-1' }),
        ],
        reasons: ['2 endpoints excepted'],
      },
      patches: [patch('P-1'), patch('P-2')],
      endpoints,
      policy: DEFAULT_POLICY,
    });
    expect(few.reasons).toEqual(['P-1: P2: critical', 'P-2: superseded by P-1', '2 endpoints excepted']);
    const ids = Array.from({ length: REASONS_CAP + 5 }, (_, i) => `P-${i}`);
    const many = summarizeAssessment({
      assessed: { patches: ids.map((id) => assessed(id)), reasons: ['overall'] },
      patches: ids.map((id) => patch(id)),
      endpoints,
      policy: DEFAULT_POLICY,
    });
    expect(many.reasons).toHaveLength(REASONS_CAP);
    expect(many.reasons).not.toContain('overall');
  });

  it('needs no human approval when every included patch falls under the auto-approval rule', () => {
    const input = (type: PatchType): AssessmentSummaryInput => ({
      assessed: { patches: [assessed('P-1'), assessed('P-2', { decision: 'dropped', endpointIds: [] })], reasons: [] },
      patches: [patch('P-1', { type }), patch('P-2', { type: 'security' })],
      endpoints,
      policy: DEFAULT_POLICY,
    });
    expect(summarizeAssessment(input('definition')).needsApproval).toBe(false);
    expect(summarizeAssessment(input('security')).needsApproval).toBe(true);
  });

  it('summarizes nothing to patch as zero counts, low risk, no approval needed', () => {
    expect(
      summarizeAssessment({ assessed: { patches: [], reasons: [] }, patches: [], endpoints, policy: DEFAULT_POLICY }),
    ).toEqual({
      endpoints: 0,
      patches: 0,
      bySeverity: {},
      byType: {},
      topPatches: [],
      reasons: [],
      risk: 'low',
      needsApproval: false,
      approvalsNeeded: 1,
    });
  });

  it('refuses an assessed patch it has no facts for', () => {
    expect(() =>
      summarizeAssessment({
        assessed: { patches: [assessed('P-x')], reasons: [] },
        patches: [],
        endpoints,
        policy: DEFAULT_POLICY,
      }),
    ).toThrow(/no facts for assessed patch P-x/);
  });
});
