import { describe, expect, it } from 'vitest';
import type { AssessResult } from '../../domain/assessment';
import type { RiskLevel } from '../../domain/approval';
import { parsePolicy } from '../../domain/policy';
import { CHANGE_HOSTNAMES_LIMIT, changeDescription, changeRequestOf, type ChangeRequestFacts } from './change-request';

const policy = parsePolicy({
  name: 'monthly',
  test: { group: 'canary', soakSeconds: 600 },
  waves: [
    { name: 'pilot', percent: 10 },
    { name: 'broad', percent: 90 },
  ],
  failureThreshold: { percent: 5, count: 3 },
  change: { type: 'normal' },
});

function assessment(o: Partial<AssessResult> = {}): AssessResult {
  return {
    endpointsInScope: 3,
    endpoints: 2,
    patches: 1,
    bySeverity: { critical: 1, low: 0 },
    byType: { security: 1 },
    topPatches: [
      {
        patchId: 'KB5001',
        title: 'Cumulative update',
        severity: 'critical',
        type: 'security',
        cvss: 9.8,
        cves: ['CVE-2024-3400'],
        knownExploited: true,
        endpoints: 2,
      },
    ],
    reasons: [],
    risk: 'high',
    needsApproval: true,
    approvalsNeeded: 1,
    ...o,
  };
}

function facts(o: Partial<ChangeRequestFacts> = {}): ChangeRequestFacts {
  return { cycleId: 'PC-1', policy, assessment: assessment(), requestedBy: 'slack:U1', ...o };
}

describe('changeRequestOf', () => {
  it('files a cycle as a change request a change manager can judge without opening patchops', () => {
    const test = {
      index: 0,
      name: 'test',
      state: 'done' as const,
      total: 2,
      succeeded: 2,
      failed: 0,
      unreachable: 0,
      pending: 0,
    };
    expect(changeRequestOf(facts({ plannedStart: '2026-12-06T02:00:00.000Z', test }), ['web-1', 'web-2'])).toEqual({
      cycleId: 'PC-1',
      type: 'normal',
      shortDescription: 'Patch cycle PC-1: 1 patch(es) on 2 endpoint(s) (monthly)',
      description: [
        'Patch cycle PC-1 under policy monthly, requested by slack:U1.',
        'Scope: 1 patch(es) on 2 endpoint(s); risk high.',
        'Severities: critical 1. Types: security 1.',
        'Test ring (test): 2 endpoint(s), 2 succeeded, 0 failed, 0 unreachable.',
        '',
        'Patches:',
        '- KB5001 Cumulative update: critical, CVSS 9.8, CVE-2024-3400, KNOWN EXPLOITED (CISA KEV); 2 endpoint(s)',
        '',
        'Endpoints (2): web-1, web-2',
      ].join('\n'),
      risk: 'high',
      impact: 2,
      plannedStart: '2026-12-06T02:00:00.000Z',
      implementationPlan: 'Test ring, then waves pilot, broad in maintenance windows; failure threshold 5% / 3.',
      backoutPlan: 'patchops rolls back the installed patches on the affected endpoints (rollback jobs).',
      testPlan: 'Test group canary soaks 600s; verification scan after deployment.',
      configurationItems: ['web-1', 'web-2'],
    });
  });

  it.each<[RiskLevel, 'high' | 'moderate' | 'low', 1 | 2 | 3]>([
    ['critical', 'high', 1],
    ['high', 'high', 2],
    ['moderate', 'moderate', 3],
    ['low', 'low', 3],
  ])('files a %s-risk cycle as risk %s, impact %d', (risk, snRisk, impact) => {
    expect(changeRequestOf(facts({ assessment: assessment({ risk }) }), [])).toMatchObject({ risk: snRisk, impact });
  });

  it('names the standard change template for a standard change, and no planned start when there is none', () => {
    const standard = parsePolicy({
      name: 'std',
      waves: [{ name: 'all', percent: 100 }],
      change: { type: 'standard', standardTemplate: 'Monthly OS patching' },
    });
    const r = changeRequestOf(facts({ policy: standard }), []);
    expect(r).toMatchObject({ type: 'standard', standardTemplate: 'Monthly OS patching' });
    expect(r).not.toHaveProperty('plannedStart');
    expect(changeRequestOf(facts(), [])).not.toHaveProperty('standardTemplate');
  });
});

describe('changeDescription', () => {
  it('says when no test ring ran, counts "none" for empty tallies, and leaves out unknown CVSS', () => {
    const text = changeDescription(
      facts({
        assessment: assessment({
          bySeverity: { low: 0 },
          byType: {},
          topPatches: [
            {
              patchId: 'P1',
              title: 'Fix',
              severity: 'low',
              type: 'bug_fix',
              cves: [],
              knownExploited: false,
              endpoints: 1,
            },
          ],
        }),
      }),
      [],
    );
    expect(text).toContain('Severities: none. Types: none.');
    expect(text).toContain('Test ring: none (no test-group endpoint needs these patches).');
    expect(text).toContain('- P1 Fix: low; 1 endpoint(s)');
  });

  it('shortens long lists: CVEs after 8, patches beyond the top ones, host names after 100', () => {
    const cves = Array.from({ length: 10 }, (_, i) => `CVE-2026-000${i}`);
    const text = changeDescription(
      facts({
        assessment: assessment({
          patches: 7,
          topPatches: [
            {
              patchId: 'P1',
              title: 'Fix',
              severity: 'low',
              type: 'security',
              cves,
              knownExploited: false,
              endpoints: 1,
            },
          ],
        }),
      }),
      Array.from({ length: 120 }, (_, i) => `h${i}`),
    );
    expect(text).toContain(`, ${cves.slice(0, 8).join(', ')} (+2); 1 endpoint(s)`);
    expect(text).toContain('… and 6 more patch(es)');
    expect(text).toMatch(/^Endpoints \(120\): h0, h1, .*, h99, …$/m);
  });

  it(`marks the host count with + when the activity's limit of ${CHANGE_HOSTNAMES_LIMIT} was reached`, () => {
    const text = changeDescription(
      facts(),
      Array.from({ length: CHANGE_HOSTNAMES_LIMIT }, (_, i) => `h${i}`),
    );
    expect(text).toMatch(new RegExp(`^Endpoints \\(${CHANGE_HOSTNAMES_LIMIT}\\+\\): `, 'm'));
  });
});
