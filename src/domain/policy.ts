/**
 * Deployment policy: what a cycle patches, who approves, how it tests, waves and reboots. Validated with
 * zod; every field has a default so `{ name: 'x' }` is a complete policy. Stored versioned in
 * deployment_policies.definition; a cycle records the version it ran under. Pure; safe in workflow code.
 */
import { z } from 'zod';
import { CodedError, ErrorCode } from './errors';
import { type PatchType, type Severity } from './patch';
import { DEFAULT_SLA, type SlaPolicy } from './sla';

const PATCH_TYPE_VALUES = [
  'security',
  'critical',
  'definition',
  'bug_fix',
  'feature',
  'update_rollup',
  'service_pack',
  'hotfix',
  'tool',
  'update',
  'firmware',
] as const satisfies readonly PatchType[];
const SEVERITY_VALUES = [
  'critical',
  'important',
  'moderate',
  'low',
  'unspecified',
] as const satisfies readonly Severity[];
const OS_FAMILIES = ['windows', 'macos', 'linux'] as const;

const int = (min: number, max: number, unit = '') => {
  const msg = `expected a whole number from ${min} to ${max}${unit}`;
  return z.number({ error: msg }).int({ error: msg }).min(min, { error: msg }).max(max, { error: msg });
};
const text = (max = 200) =>
  z
    .string({ error: 'expected text' })
    .trim()
    .min(1, { error: 'must not be empty' })
    .max(max, { error: `must be at most ${max} characters` });
const words = (what: string) => z.array(text(), { error: `expected a list of ${what}` });
const patchType = z.enum(PATCH_TYPE_VALUES, { error: `expected one of ${PATCH_TYPE_VALUES.join(', ')}` });
const severity = z.enum(SEVERITY_VALUES, { error: `expected one of ${SEVERITY_VALUES.join(', ')}` });
const name = z
  .string({ error: 'expected a name' })
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, {
    error: "expected a name of letters, digits, '-', '_' or '.' (one word, at most 63 characters)",
  });
const DAY = 86_400;

export const failureThresholdSchema = z.strictObject({
  /** Trips when at least this percent of the ring/wave failed; 0 = no percent limit. */
  percent: z
    .number({ error: 'expected a number from 0 to 100' })
    .min(0, { error: 'expected a number from 0 to 100' })
    .max(100, { error: 'expected a number from 0 to 100' }),
  /** Trips when at least this many endpoints failed; 0 = no count limit. */
  count: int(0, 1_000_000),
});
export type FailureThreshold = z.infer<typeof failureThresholdSchema>;

export const policyFiltersSchema = z
  .strictObject({
    types: z.array(patchType).optional(),
    severities: z.array(severity).optional(),
    vendors: words('vendor names').optional(),
    products: words('product names').optional(),
    /** Patches always considered (still subject to exceptions and supersedence). */
    includePatches: words('patch ids').optional(),
    /** Patches never deployed by this policy. */
    excludePatches: words('patch ids').optional(),
    /**
     * Device firmware (type `firmware`) is deployed only when this is true: flashing firmware needs its own
     * yes, so a policy written before firmware was scanned never starts flashing (filterReason in risk.ts).
     */
    firmware: z.boolean({ error: 'expected true or false' }).optional(),
  })
  .superRefine((f, ctx) => {
    if (f.types?.includes('firmware') && f.firmware !== true) {
      ctx.addIssue({
        code: 'custom',
        path: ['firmware'],
        message: 'filters.types names firmware: set filters.firmware to true as well to deploy firmware',
      });
    }
  });
export type PolicyFilters = z.infer<typeof policyFiltersSchema>;

const slaSchema = z.strictObject({
  criticalDays: int(1, 3650, ' days').default(DEFAULT_SLA.criticalDays),
  importantDays: int(1, 3650, ' days').default(DEFAULT_SLA.importantDays),
  moderateDays: int(1, 3650, ' days').default(DEFAULT_SLA.moderateDays),
  lowDays: int(1, 3650, ' days').default(DEFAULT_SLA.lowDays),
  unspecifiedDays: int(1, 3650, ' days').default(DEFAULT_SLA.unspecifiedDays),
  knownExploitedDays: int(1, 3650, ' days').default(DEFAULT_SLA.knownExploitedDays),
}) satisfies z.ZodType<SlaPolicy, unknown>;

const waveSchema = z.strictObject({
  name,
  percent: z
    .number({ error: 'expected a number from 1 to 100' })
    .min(1, { error: 'expected a number from 1 to 100' })
    .max(100, { error: 'expected a number from 1 to 100' })
    .optional(),
  groups: z
    .array(text(), { error: 'expected a list of group names' })
    .min(1, { error: 'expected at least one group name' })
    .optional(),
});

const CRON_FIELD = /^(\*|\d+|\d+-\d+)(\/\d+)?(,(\*|\d+|\d+-\d+)(\/\d+)?)*$/;

export const deploymentPolicySchema = z
  .strictObject({
    name,
    description: z.string({ error: 'expected text' }).max(2000).default(''),
    scope: z
      .strictObject({
        groups: words('group names').default([]),
        tags: words('tags').default([]),
        osFamilies: z.array(z.enum(OS_FAMILIES, { error: 'expected one of windows, macos, linux' })).default([]),
      })
      .prefault({}),
    filters: policyFiltersSchema.prefault({}),
    autoApprove: z
      .strictObject({
        /** Patches of only these types need no human approval. */
        types: z.array(patchType).default(['definition']),
        /** ... and only up to this severity (none = any severity). */
        maxSeverity: severity.optional(),
      })
      .prefault({}),
    approval: z
      .strictObject({
        approverGroups: words('group names')
          .min(1, { error: 'expected at least one approver group' })
          .default(['default']),
        quorum: z
          .strictObject({
            low: int(1, 10).default(1),
            moderate: int(1, 10).default(1),
            high: int(1, 10).default(1),
            critical: int(1, 10).default(2),
          })
          .prefault({}),
        separationOfDuties: z.boolean({ error: 'expected true or false' }).default(true),
        /** The request expires (cycle ends, not approved) after this long. */
        timeoutSeconds: int(60, 30 * DAY, ' seconds').default(DAY),
        /** Remind approvers every this long while pending. */
        reminderSeconds: int(60, 30 * DAY, ' seconds').default(4 * 3600),
        /** Asked in addition after escalateAfterSeconds; their votes count only once escalated. */
        escalationGroups: words('group names').default([]),
        escalateAfterSeconds: int(60, 30 * DAY, ' seconds').default(8 * 3600),
      })
      .prefault({}),
    test: z
      .strictObject({
        /** The test ring's group; null = no test ring. */
        group: text().nullable().default('test'),
        soakSeconds: int(0, 30 * DAY, ' seconds').default(3600),
        failureThreshold: failureThresholdSchema.prefault({ percent: 10, count: 1 }),
      })
      .prefault({}),
    waves: z
      .array(waveSchema, { error: 'expected a list of waves' })
      .min(1, { error: 'expected at least one wave' })
      .max(50, { error: 'expected at most 50 waves' })
      .default([
        { name: 'pilot', percent: 10 },
        { name: 'broad', percent: 90 },
      ]),
    batchSize: int(1, 100_000).default(100),
    concurrency: int(1, 100_000).default(50),
    failureThreshold: failureThresholdSchema.prefault({ percent: 10, count: 50 }),
    reboot: z
      .strictObject({
        behaviour: z
          .enum(['never', 'if_required', 'always'], { error: 'expected one of never, if_required, always' })
          .default('if_required'),
        notifyUser: z.boolean({ error: 'expected true or false' }).default(true),
        deferralLimit: int(0, 50).default(3),
        deferralMinutes: int(1, 24 * 60, ' minutes').default(60),
      })
      .prefault({}),
    maintenance: z
      .strictObject({
        respectWindows: z.boolean({ error: 'expected true or false' }).default(true),
        expectedInstallMinutes: int(0, 24 * 60, ' minutes').default(30),
      })
      .prefault({}),
    sla: slaSchema.prefault({}),
    change: z
      .strictObject({
        type: z
          .enum(['none', 'normal', 'standard', 'emergency'], {
            error: 'expected one of none, normal, standard, emergency',
          })
          .default('none'),
        standardTemplate: text().optional(),
        pollSeconds: int(5, DAY, ' seconds').default(60),
      })
      .prefault({}),
    emergency: z.boolean({ error: 'expected true or false' }).default(false),
    emergencyOverrides: z
      .strictObject({
        soakSeconds: int(0, 30 * DAY, ' seconds').default(600),
        ignoreWindows: z.boolean({ error: 'expected true or false' }).default(true),
        approverGroups: words('group names').min(1, { error: 'expected at least one approver group' }).optional(),
        changeType: z
          .enum(['emergency', 'normal', 'none'], { error: 'expected one of emergency, normal, none' })
          .default('emergency'),
      })
      .prefault({}),
    notify: z
      .strictObject({
        slackChannel: text().optional(),
        teamsConversationId: text().optional(),
        email: z
          .array(
            z
              .string()
              .trim()
              .regex(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { error: 'expected an e-mail address' }),
          )
          .default([]),
      })
      .prefault({}),
    schedule: z
      .strictObject({
        /** Five-field cron (minute hour day-of-month month day-of-week) for fleet scans. */
        scanCron: z
          .string({ error: 'expected a cron expression' })
          .trim()
          .refine((s) => s.split(/\s+/).length === 5 && s.split(/\s+/).every((f) => CRON_FIELD.test(f)), {
            error: 'expected a five-field cron expression such as "0 2 * * *"',
          })
          .optional(),
      })
      .prefault({}),
    identify: z
      .strictObject({
        /** An endpoint whose last scan is missing or older than this is scanned before the cycle assesses it. */
        maxScanAgeHours: int(1, 24 * 365, ' hours').default(24),
        /** How long identify waits for those scans; endpoints that have not answered by then are left out and named. */
        scanTimeoutSeconds: int(5, DAY, ' seconds').default(900),
      })
      .prefault({}),
    jobs: z
      .strictObject({
        /** A job with no word from its agent for this long counts as unreachable. */
        unreachableAfterSeconds: int(30, 7 * DAY, ' seconds').default(1800),
        pollIntervalSeconds: int(1, 3600, ' seconds').default(10),
      })
      .prefault({}),
  })
  .superRefine((p, ctx) => {
    const seen = new Set<string>();
    p.waves.forEach((w, i) => {
      if (w.percent === undefined && w.groups === undefined) {
        ctx.addIssue({ code: 'custom', path: ['waves', i], message: 'give either percent or groups' });
      }
      if (w.percent !== undefined && w.groups !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['waves', i], message: 'give either percent or groups, not both' });
      }
      if (seen.has(w.name))
        ctx.addIssue({ code: 'custom', path: ['waves', i, 'name'], message: `wave name "${w.name}" is used twice` });
      seen.add(w.name);
    });
    const percentWaves = p.waves.filter((w) => w.percent !== undefined && w.groups === undefined);
    if (percentWaves.length > 0) {
      const total = percentWaves.reduce((sum, w) => sum + (w.percent ?? 0), 0);
      if (Math.abs(total - 100) > 1e-9) {
        ctx.addIssue({
          code: 'custom',
          path: ['waves'],
          message: `the wave percents must total 100 (they total ${total})`,
        });
      }
    }
    if (p.change.type === 'standard' && !p.change.standardTemplate) {
      ctx.addIssue({
        code: 'custom',
        path: ['change', 'standardTemplate'],
        message: 'a standard change needs the name of its template',
      });
    }
    if (p.approval.reminderSeconds > p.approval.timeoutSeconds) {
      ctx.addIssue({
        code: 'custom',
        path: ['approval', 'reminderSeconds'],
        message: 'must not be longer than approval.timeoutSeconds',
      });
    }
  });

export type DeploymentPolicy = z.infer<typeof deploymentPolicySchema>;
/** What a policy author writes (every field optional but name). */
export type DeploymentPolicyInput = z.input<typeof deploymentPolicySchema>;

/** "waves[1].percent" */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(policy)' : out;
}

function issueText(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    case 'invalid_type':
      if (issue.message.startsWith('Invalid input'))
        return issue.input === undefined ? `is required (${issue.expected})` : `expected ${issue.expected}`;
      return issue.message;
    default:
      return issue.message;
  }
}

/** Each problem with its path, e.g. ["waves[1].percent: expected a number from 1 to 100"]. */
export function policyProblems(doc: unknown): string[] {
  const r = deploymentPolicySchema.safeParse(doc);
  if (r.success) return [];
  return problemList(r.error);
}

function problemList(error: z.ZodError): string[] {
  return [...new Set(error.issues.map((i) => `${formatPath(i.path)}: ${issueText(i)}`))];
}

/**
 * Validates a policy document and fills in defaults. Throws CodedError(POLICY_INVALID) whose message
 * names every problem with its path.
 */
export function parsePolicy(doc: unknown): DeploymentPolicy {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new CodedError(
      ErrorCode.PolicyInvalid,
      'The policy is not valid: expected an object with at least a "name" field, e.g. { "name": "servers" }.',
    );
  }
  const r = deploymentPolicySchema.safeParse(doc);
  if (r.success) return r.data;
  const problems = problemList(r.error);
  const label = typeof (doc as { name?: unknown }).name === 'string' ? ` "${(doc as { name: string }).name}"` : '';
  throw new CodedError(
    ErrorCode.PolicyInvalid,
    `The policy${label} is not valid (${problems.length} problem${problems.length > 1 ? 's' : ''}): ${problems.join('; ')}. Fix these fields and save it again; docs/policy.md lists every field.`,
  );
}

/** The policy a new user gets: test ring "test" soaking 1 h, then pilot 10 % and broad 90 %, no change desk. */
export const DEFAULT_POLICY: DeploymentPolicy = parsePolicy({
  name: 'default',
  description:
    'Test ring (group "test", 1 h soak), then a 10% pilot wave and a 90% broad wave, in maintenance windows.',
  test: { group: 'test', soakSeconds: 3600 },
  waves: [
    { name: 'pilot', percent: 10 },
    { name: 'broad', percent: 90 },
  ],
  change: { type: 'none' },
});

/** For an actively exploited vulnerability: emergency change, 10-minute soak, no waiting for windows. */
export const EMERGENCY_POLICY: DeploymentPolicy = parsePolicy({
  name: 'emergency',
  description: 'Emergency: 10-minute test soak, deploys without waiting for maintenance windows, emergency change.',
  emergency: true,
  test: { group: 'test', soakSeconds: 600 },
  waves: [
    { name: 'pilot', percent: 10 },
    { name: 'broad', percent: 90 },
  ],
  maintenance: { respectWindows: false },
  change: { type: 'emergency' },
  emergencyOverrides: { soakSeconds: 600, ignoreWindows: true, changeType: 'emergency' },
});

/**
 * The policy as a cycle runs it: with `emergency` (or a policy marked emergency) the emergency overrides
 * replace soak time, window respect, approver groups and change type. Returns a new object.
 */
export function effectivePolicy(p: DeploymentPolicy, emergency: boolean): DeploymentPolicy {
  if (!emergency && !p.emergency) return p;
  const o = p.emergencyOverrides;
  return {
    ...p,
    emergency: true,
    test: { ...p.test, soakSeconds: Math.min(p.test.soakSeconds, o.soakSeconds) },
    maintenance: { ...p.maintenance, respectWindows: p.maintenance.respectWindows && !o.ignoreWindows },
    approval: { ...p.approval, approverGroups: o.approverGroups ?? p.approval.approverGroups },
    change: { ...p.change, type: o.changeType },
  };
}

/**
 * Has a ring or wave failed its threshold? Trips when failed ≥ count (count > 0) or failed is at least
 * `percent` of total (percent > 0). Unreachable endpoints count as failed when `countUnreachable`.
 */
export function failureThresholdTripped(
  threshold: FailureThreshold,
  counts: { total: number; failed: number; unreachable?: number },
  countUnreachable = true,
): boolean {
  const failed = counts.failed + (countUnreachable ? (counts.unreachable ?? 0) : 0);
  if (failed <= 0 || counts.total <= 0) return false;
  if (threshold.count > 0 && failed >= threshold.count) return true;
  if (threshold.percent > 0 && (failed * 100) / counts.total >= threshold.percent) return true;
  return false;
}
