/**
 * The words of a cycle's change request: what a change manager reads in ServiceNow to judge it without
 * opening patchops (short description, description, plans) and the risk and impact it is filed under.
 * Pure: the activity gathers the facts, ServiceNowChangeDesk files the request.
 */
import type { AssessResult } from '../../domain/assessment';
import type { WaveStatus } from '../../domain/cycle';
import type { DeploymentPolicy } from '../../domain/policy';
import type { ChangeRequestInput } from '../../domain/ports';

export interface ChangeRequestFacts {
  cycleId: string;
  policy: DeploymentPolicy;
  assessment: AssessResult;
  requestedBy: string;
  plannedStart?: string;
  /** The test ring's result, when the cycle had one (it runs before the change is raised). */
  test?: WaveStatus;
}

/** How many host names the activity reads for a change (the description says "500+" when it hits this). */
export const CHANGE_HOSTNAMES_LIMIT = 500;

/** The change request for a cycle whose policy asks for one (change.type is not 'none'). */
export function changeRequestOf(input: ChangeRequestFacts, hostnames: string[]): ChangeRequestInput {
  const a = input.assessment;
  const type = input.policy.change.type as ChangeRequestInput['type'];
  return {
    cycleId: input.cycleId,
    type,
    ...(input.policy.change.standardTemplate ? { standardTemplate: input.policy.change.standardTemplate } : {}),
    shortDescription: `Patch cycle ${input.cycleId}: ${a.patches} patch(es) on ${a.endpoints} endpoint(s) (${input.policy.name})`,
    description: changeDescription(input, hostnames),
    risk: a.risk === 'critical' || a.risk === 'high' ? 'high' : a.risk === 'moderate' ? 'moderate' : 'low',
    impact: a.risk === 'critical' ? 1 : a.risk === 'high' ? 2 : 3,
    ...(input.plannedStart ? { plannedStart: input.plannedStart } : {}),
    implementationPlan: `Test ring, then waves ${input.policy.waves.map((w) => w.name).join(', ')} in maintenance windows; failure threshold ${input.policy.failureThreshold.percent}% / ${input.policy.failureThreshold.count}.`,
    backoutPlan: 'patchops rolls back the installed patches on the affected endpoints (rollback jobs).',
    testPlan: `Test group ${input.policy.test.group ?? '(none)'} soaks ${input.policy.test.soakSeconds}s; verification scan after deployment.`,
    configurationItems: hostnames,
  };
}

/** The change request's description: what a change manager needs to judge it without opening patchops. */
export function changeDescription(
  input: Pick<ChangeRequestFacts, 'cycleId' | 'policy' | 'assessment' | 'requestedBy' | 'test'>,
  hostnames: string[],
): string {
  const a = input.assessment;
  const counts = (r: Record<string, number>) =>
    Object.entries(r)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ') || 'none';
  const lines = [
    `Patch cycle ${input.cycleId} under policy ${input.policy.name}, requested by ${input.requestedBy}.`,
    `Scope: ${a.patches} patch(es) on ${a.endpoints} endpoint(s); risk ${a.risk}.`,
    `Severities: ${counts(a.bySeverity)}. Types: ${counts(a.byType)}.`,
    input.test
      ? `Test ring (${input.test.name}): ${input.test.total} endpoint(s), ${input.test.succeeded} succeeded, ${input.test.failed} failed, ${input.test.unreachable} unreachable.`
      : 'Test ring: none (no test-group endpoint needs these patches).',
    '',
    'Patches:',
    ...a.topPatches.map(
      (p) =>
        `- ${p.patchId} ${p.title}: ${p.severity}${p.cvss !== undefined && p.cvss !== null ? `, CVSS ${p.cvss.toFixed(1)}` : ''}` +
        `${p.cves.length ? `, ${p.cves.slice(0, 8).join(', ')}${p.cves.length > 8 ? ` (+${p.cves.length - 8})` : ''}` : ''}` +
        `${p.knownExploited ? ', KNOWN EXPLOITED (CISA KEV)' : ''}; ${p.endpoints} endpoint(s)`,
    ),
    ...(a.patches > a.topPatches.length ? [`… and ${a.patches - a.topPatches.length} more patch(es)`] : []),
    '',
    `Endpoints (${hostnames.length}${hostnames.length >= CHANGE_HOSTNAMES_LIMIT ? '+' : ''}): ${hostnames.slice(0, 100).join(', ')}${hostnames.length > 100 ? ', …' : ''}`,
  ];
  return lines.join('\n');
}
