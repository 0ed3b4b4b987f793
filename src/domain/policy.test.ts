import { describe, expect, it } from 'vitest';
import { CodedError, ErrorCode } from './errors';
import {
  DEFAULT_POLICY,
  deploymentPolicySchema,
  effectivePolicy,
  EMERGENCY_POLICY,
  failureThresholdTripped,
  parsePolicy,
  policyProblems,
} from './policy';

describe('parsePolicy', () => {
  it('fills every default from just a name', () => {
    const p = parsePolicy({ name: 'x' });
    expect(p.name).toBe('x');
    expect(p.autoApprove.types).toEqual(['definition']);
    expect(p.approval).toMatchObject({
      approverGroups: ['default'],
      quorum: { low: 1, moderate: 1, high: 1, critical: 2 },
      separationOfDuties: true,
    });
    expect(p.waves.map((w) => w.percent)).toEqual([10, 90]);
    expect(p.reboot.behaviour).toBe('if_required');
    expect(p.change.type).toBe('none');
    expect(p.sla.knownExploitedDays).toBeLessThan(p.sla.criticalDays);
    expect(p.emergency).toBe(false);
    expect(p.identify).toEqual({ maxScanAgeHours: 24, scanTimeoutSeconds: 900 });
    expect(deploymentPolicySchema.parse(p)).toEqual(p);
  });

  it('identify: scan age in whole hours, a bounded scan wait', () => {
    expect(parsePolicy({ name: 'x', identify: { maxScanAgeHours: 6 } }).identify).toEqual({
      maxScanAgeHours: 6,
      scanTimeoutSeconds: 900,
    });
    expect(policyProblems({ name: 'x', identify: { maxScanAgeHours: 0 } })).toEqual([
      'identify.maxScanAgeHours: expected a whole number from 1 to 8760 hours',
    ]);
    expect(policyProblems({ name: 'x', identify: { scanTimeoutSeconds: 2 } })).toEqual([
      'identify.scanTimeoutSeconds: expected a whole number from 5 to 86400 seconds',
    ]);
    expect(policyProblems({ name: 'x', identify: { maxAgeHours: 6 } })).toEqual([
      'identify: unknown field "maxAgeHours"',
    ]);
  });

  it('keeps what the author wrote', () => {
    const p = parsePolicy({
      name: 'servers',
      scope: { groups: ['db'], osFamilies: ['linux'] },
      filters: { types: ['security', 'critical'], severities: ['critical'], excludePatches: ['KB1'] },
      approval: { approverGroups: ['cab'], quorum: { critical: 3 }, escalationGroups: ['it-leads'] },
      waves: [
        { name: 'canary', groups: ['db-canary'] },
        { name: 'a', percent: 30 },
        { name: 'b', percent: 70 },
      ],
      reboot: { behaviour: 'always', deferralLimit: 0 },
      change: { type: 'standard', standardTemplate: 'Monthly OS patching' },
      notify: { email: ['ops@example.com'] },
      schedule: { scanCron: '0 2 * * 1-5' },
    });
    expect(p.scope).toEqual({ groups: ['db'], tags: [], osFamilies: ['linux'] });
    expect(p.approval.quorum).toEqual({ low: 1, moderate: 1, high: 1, critical: 3 });
    expect(p.waves).toHaveLength(3);
    expect(p.reboot).toMatchObject({ behaviour: 'always', deferralLimit: 0, notifyUser: true });
    expect(p.change.standardTemplate).toBe('Monthly OS patching');
  });

  const bad: Array<{ name: string; doc: unknown; problem: string }> = [
    {
      name: 'wave percent out of range',
      doc: {
        name: 'x',
        waves: [
          { name: 'a', percent: 50 },
          { name: 'b', percent: 500 },
        ],
      },
      problem: 'waves[1].percent: expected a number from 1 to 100',
    },
    {
      name: 'percents not totalling 100',
      doc: {
        name: 'x',
        waves: [
          { name: 'a', percent: 50 },
          { name: 'b', percent: 40 },
        ],
      },
      problem: 'waves: the wave percents must total 100 (they total 90)',
    },
    {
      name: 'wave with neither percent nor groups',
      doc: { name: 'x', waves: [{ name: 'a' }] },
      problem: 'waves[0]: give either percent or groups',
    },
    {
      name: 'wave with both',
      doc: { name: 'x', waves: [{ name: 'a', percent: 100, groups: ['g'] }] },
      problem: 'waves[0]: give either percent or groups, not both',
    },
    {
      name: 'duplicate wave names',
      doc: {
        name: 'x',
        waves: [
          { name: 'a', percent: 50 },
          { name: 'a', percent: 50 },
        ],
      },
      problem: 'waves[1].name: wave name "a" is used twice',
    },
    { name: 'no waves', doc: { name: 'x', waves: [] }, problem: 'waves: expected at least one wave' },
    { name: 'missing name', doc: { description: 'no name' }, problem: 'name: expected a name' },
    { name: 'name with spaces', doc: { name: 'my policy' }, problem: 'name: expected a name of letters' },
    { name: 'unknown field', doc: { name: 'x', wavs: [] }, problem: '(policy): unknown field "wavs"' },
    {
      name: 'unknown nested field',
      doc: { name: 'x', reboot: { behavior: 'always' } },
      problem: 'reboot: unknown field "behavior"',
    },
    {
      name: 'bad enum',
      doc: { name: 'x', reboot: { behaviour: 'sometimes' } },
      problem: 'reboot.behaviour: expected one of never, if_required, always',
    },
    {
      name: 'bad patch type',
      doc: { name: 'x', filters: { types: ['securty'] } },
      problem: 'filters.types[0]: expected one of security',
    },
    {
      name: 'quorum zero',
      doc: { name: 'x', approval: { quorum: { low: 0 } } },
      problem: 'approval.quorum.low: expected a whole number from 1 to 10',
    },
    {
      name: 'string number',
      doc: { name: 'x', batchSize: '3' },
      problem: 'batchSize: expected a whole number from 1 to 100000',
    },
    {
      name: 'standard change without template',
      doc: { name: 'x', change: { type: 'standard' } },
      problem: 'change.standardTemplate: a standard change needs the name of its template',
    },
    {
      name: 'bad cron',
      doc: { name: 'x', schedule: { scanCron: 'every day' } },
      problem: 'schedule.scanCron: expected a five-field cron expression',
    },
    {
      name: 'bad email',
      doc: { name: 'x', notify: { email: ['nobody'] } },
      problem: 'notify.email[0]: expected an e-mail address',
    },
    {
      name: 'reminder after timeout',
      doc: { name: 'x', approval: { timeoutSeconds: 600, reminderSeconds: 3600 } },
      problem: 'approval.reminderSeconds: must not be longer than approval.timeoutSeconds',
    },
  ];
  it.each(bad)('refuses $name with the path and a plain reason', ({ doc, problem }) => {
    let caught: unknown;
    try {
      parsePolicy(doc);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(CodedError);
    expect((caught as CodedError).code).toBe(ErrorCode.PolicyInvalid);
    expect((caught as CodedError).message).toContain(problem);
    expect(policyProblems(doc).some((p) => p.startsWith(problem))).toBe(true);
  });

  it('lists every problem at once', () => {
    const problems = policyProblems({ name: 'x', batchSize: 0, concurrency: -1, waves: [{ name: 'a', percent: 0 }] });
    expect(problems).toEqual(
      expect.arrayContaining([
        'waves[0].percent: expected a number from 1 to 100',
        'batchSize: expected a whole number from 1 to 100000',
        'concurrency: expected a whole number from 1 to 100000',
      ]),
    );
    expect(new Set(problems).size).toBe(problems.length);
  });

  it.each([null, 'x', 42, [], undefined])('refuses a non-object %j', (doc) => {
    expect(() => parsePolicy(doc)).toThrow(/expected an object with at least a "name"/);
  });
});

describe('built-in policies', () => {
  it('default: test ring "test" soaking an hour, pilot 10% and broad 90%, no change desk', () => {
    expect(DEFAULT_POLICY).toMatchObject({
      name: 'default',
      emergency: false,
      test: { group: 'test', soakSeconds: 3600 },
      change: { type: 'none' },
    });
    expect(DEFAULT_POLICY.waves).toEqual([
      { name: 'pilot', percent: 10 },
      { name: 'broad', percent: 90 },
    ]);
  });

  it('emergency: short soak, windows ignored, emergency change', () => {
    const p = effectivePolicy(EMERGENCY_POLICY, false);
    expect(p.emergency).toBe(true);
    expect(p.test.soakSeconds).toBeLessThan(DEFAULT_POLICY.test.soakSeconds);
    expect(p.maintenance.respectWindows).toBe(false);
    expect(p.change.type).toBe('emergency');
  });
});

describe('effectivePolicy', () => {
  it('returns the policy unchanged when not an emergency', () => {
    expect(effectivePolicy(DEFAULT_POLICY, false)).toBe(DEFAULT_POLICY);
  });

  it('applies the emergency overrides', () => {
    const p = parsePolicy({
      name: 'servers',
      test: { soakSeconds: 7200 },
      change: { type: 'normal' },
      approval: { approverGroups: ['cab'] },
      emergencyOverrides: {
        soakSeconds: 300,
        ignoreWindows: true,
        approverGroups: ['security-oncall'],
        changeType: 'emergency',
      },
    });
    const e = effectivePolicy(p, true);
    expect(e).toMatchObject({
      emergency: true,
      test: { soakSeconds: 300 },
      maintenance: { respectWindows: false },
      change: { type: 'emergency' },
    });
    expect(e.approval.approverGroups).toEqual(['security-oncall']);
    expect(p.test.soakSeconds).toBe(7200);
  });

  it('keeps windows and approvers when the overrides say so', () => {
    const p = parsePolicy({ name: 'x', emergencyOverrides: { ignoreWindows: false, changeType: 'normal' } });
    const e = effectivePolicy(p, true);
    expect(e.maintenance.respectWindows).toBe(true);
    expect(e.approval.approverGroups).toEqual(['default']);
    expect(e.change.type).toBe('normal');
  });
});

describe('failureThresholdTripped', () => {
  const cases: Array<
    [{ percent: number; count: number }, { total: number; failed: number; unreachable?: number }, boolean]
  > = [
    [{ percent: 10, count: 50 }, { total: 100, failed: 9 }, false],
    [{ percent: 10, count: 50 }, { total: 100, failed: 10 }, true],
    [{ percent: 10, count: 5 }, { total: 10_000, failed: 5 }, true],
    [{ percent: 10, count: 5 }, { total: 10_000, failed: 3, unreachable: 2 }, true],
    [{ percent: 0, count: 0 }, { total: 10, failed: 10 }, false],
    [{ percent: 10, count: 1 }, { total: 0, failed: 0 }, false],
    [{ percent: 50, count: 0 }, { total: 4, failed: 1 }, false],
  ];
  it.each(cases)('%j with %j → %s', (threshold, counts, expected) => {
    expect(failureThresholdTripped(threshold, counts)).toBe(expected);
  });

  it('can leave unreachable endpoints out', () => {
    expect(failureThresholdTripped({ percent: 0, count: 2 }, { total: 10, failed: 1, unreachable: 5 }, false)).toBe(
      false,
    );
  });
});

describe('docs/policy.md', () => {
  it('its example policy is valid', async () => {
    const { readFile } = await import('node:fs/promises');
    const md = await readFile(new URL('../../docs/policy.md', import.meta.url), 'utf8');
    const json = md.split('```json')[1]?.split('```')[0];
    expect(json).toBeDefined();
    const p = parsePolicy(JSON.parse(json!));
    expect(p.name).toBe('servers');
    expect(p.change.type).toBe('standard');
  });
});
