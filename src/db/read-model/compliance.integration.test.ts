/**
 * One fleet, every view: the dashboard overview, the reports, the Slack App Home, the e-mail digest, the
 * `report` verb (Slack, Teams and the CLI's chat share it) and the wave counts must give the same numbers.
 * The fleet holds each case on which the views used to disagree: a pending_reboot row, an unreachable
 * endpoint, a retired endpoint with outstanding patches, a failed install, a detection late on a UTC day,
 * and a wave with held jobs.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { fakeCycleService } from '../../../test/browser/fixtures';
import { createDigestActivities } from '../../activities/digest';
import { patchHealth } from '../../chat/core/health';
import { compliancePercent, daysOverdue } from '../../domain/compliance';
import { DEFAULT_SLA, slaDays, type SlaPolicy } from '../../domain/risk';
import { SEVERITIES } from '../../domain/patch';
import { createLogger } from '../../logging';
import { collectReport } from '../../reports/report';
import { executeCommand } from '../../../test/helpers/legacy-commands';
import { DrizzleAgentJobs } from '../agent-jobs';
import { cycleDetail, listPatches, overview } from '../dashboard';
import {
  agentJobs,
  endpointGroups,
  endpointPatches,
  endpoints,
  groupMembers,
  patchCycles,
  patches,
} from '../schema/index';
import { complianceSummary, slaBreaches, slaDaysSql } from './compliance';

const DAY = 86_400_000;

describe('one read model: every view gives the same numbers', () => {
  let t: TestDatabase;
  const now = new Date();
  const ago = (days: number) => new Date(now.getTime() - days * DAY);
  /** 01:00 UTC on the day `days` days before today. */
  const earlyOnDay = (days: number) => new Date(Math.floor(now.getTime() / DAY) * DAY - days * DAY + 3_600_000);

  beforeAll(async () => {
    t = await createTestDatabase();
    const [web, dbs] = await t.db
      .insert(endpointGroups)
      .values([{ name: 'web' }, { name: 'db' }])
      .returning({ id: endpointGroups.id });
    await t.db.insert(endpoints).values([
      { id: 'web-1', machineId: 'm-web-1', hostname: 'web-1', osFamily: 'linux', osName: 'Debian', tags: ['pci'] },
      {
        id: 'web-2',
        machineId: 'm-web-2',
        hostname: 'web-2',
        osFamily: 'linux',
        osName: 'Debian',
        pendingReboot: true,
      },
      {
        id: 'db-1',
        machineId: 'm-db-1',
        hostname: 'db-1',
        osFamily: 'windows',
        osName: 'Windows Server 2022',
        status: 'unreachable',
      },
      { id: 'mac-1', machineId: 'm-mac-1', hostname: 'mac-1', osFamily: 'macos', osName: 'macOS 15' },
      { id: 'old-1', machineId: 'm-old-1', hostname: 'old-1', osFamily: 'linux', osName: 'Debian', status: 'retired' },
    ]);
    await t.db.insert(groupMembers).values([
      { groupId: web!.id, endpointId: 'web-1' },
      { groupId: web!.id, endpointId: 'web-2' },
      { groupId: web!.id, endpointId: 'old-1' },
      { groupId: dbs!.id, endpointId: 'db-1' },
    ]);
    await t.db.insert(patches).values([
      {
        id: 'KB1',
        title: 'Windows security update',
        vendor: 'Microsoft',
        type: 'security',
        severity: 'critical',
        knownExploited: true,
        osFamily: 'windows',
      },
      { id: 'DSA-1', title: 'openssl', vendor: 'Debian', type: 'security', severity: 'important', osFamily: 'linux' },
      { id: 'DSA-2', title: 'libxml2', vendor: 'Debian', type: 'security', severity: 'important', osFamily: 'linux' },
      { id: 'DSA-3', title: 'curl', vendor: 'Debian', type: 'bugfix', severity: 'low', osFamily: 'linux' },
    ]);
    await t.db.insert(endpointPatches).values([
      { endpointId: 'web-1', patchId: 'DSA-1', state: 'missing', detectedAt: ago(40) }, // past the 30 days
      // Due today (detected 30 UTC days ago, early in the day): not overdue until tomorrow, in every view.
      { endpointId: 'web-1', patchId: 'DSA-2', state: 'missing', detectedAt: earlyOnDay(30) },
      { endpointId: 'web-1', patchId: 'DSA-3', state: 'failed', detectedAt: ago(2), lastError: 'dpkg lock' },
      { endpointId: 'web-2', patchId: 'DSA-1', state: 'installed', detectedAt: ago(40), installedAt: ago(1) },
      { endpointId: 'web-2', patchId: 'DSA-3', state: 'pending_reboot', detectedAt: ago(40) }, // installed, awaiting reboot
      { endpointId: 'db-1', patchId: 'KB1', state: 'missing', detectedAt: ago(10) }, // known exploited: 7 days
      { endpointId: 'mac-1', patchId: 'DSA-3', state: 'not_applicable', detectedAt: ago(40) },
      { endpointId: 'old-1', patchId: 'DSA-1', state: 'missing', detectedAt: ago(40) }, // retired: counts nowhere
    ]);
    await t.db.insert(patchCycles).values({
      id: 'c1',
      workflowId: 'patch-cycle:c1',
      policyName: 'default',
      policyVersion: 1,
      stage: 'DEPLOYING',
      requestedBy: 'cli:admin',
    });
    await t.db.insert(agentJobs).values(
      (['queued', 'leased', 'held', 'succeeded', 'failed', 'cancelled'] as const).map((state, i) => ({
        id: `install:c1:1:j${i}`,
        cycleId: 'c1',
        wave: 1,
        endpointId: 'web-1',
        kind: 'install',
        state,
      })),
    );
  });
  afterAll(async () => {
    await t?.close();
  });

  // Counted endpoints: web-1, web-2, db-1, mac-1. Compliant: web-2 (pending_reboot is installed), mac-1.
  // Outstanding pairs: DSA-1, DSA-2, DSA-3 on web-1 and KB1 on db-1. Overdue: DSA-1 (40 > 30), KB1 (10 > 7).
  const expected = {
    endpoints: 4,
    compliant: 2,
    compliancePct: 50,
    bySeverity: { critical: 1, important: 2, moderate: 0, low: 1, unspecified: 0 },
    overdueBySeverity: { critical: 1, important: 1, moderate: 0, low: 0, unspecified: 0 },
    overdue: 2,
    knownExploited: 1,
    failed: 1,
  };

  it('the dashboard overview', async () => {
    expect(await overview(t.db, { now })).toMatchObject(expected);
  });

  it('the reports (CSV/PDF and `patchops report`): the same overview, and one breach row per overdue pair', async () => {
    const r = await collectReport(t.db, 'all', { now });
    expect(r.overview).toMatchObject(expected);
    const perSeverity = Object.fromEntries(
      SEVERITIES.map((s) => [s, r.breaches!.filter((b) => b.severity === s).length]),
    );
    expect(perSeverity).toEqual(expected.overdueBySeverity);
    expect(r.breaches!.map((b) => `${b.endpointId}/${b.patchId}/${b.daysOverdue}`).sort()).toEqual([
      'db-1/KB1/3',
      'web-1/DSA-1/10',
    ]);
  });

  it('the patches page: on how many counted endpoints each patch is missing or failed', async () => {
    const list = await listPatches(t.db);
    expect(list.map((p) => [p.id, p.missing, p.failed])).toEqual([
      ['KB1', 1, 0],
      ['DSA-1', 1, 0],
      ['DSA-2', 1, 0],
      ['DSA-3', 0, 1],
    ]);
    const total = list.reduce((n, p) => n + p.missing + p.failed, 0);
    expect(total).toBe(Object.values(expected.bySeverity).reduce((a, b) => a + b, 0));
  });

  it('the Slack App Home', async () => {
    const h = await patchHealth(t.db, fakeCycleService(), 'slack:U1', now);
    expect(h).toMatchObject({
      compliancePercent: expected.compliancePct,
      endpoints: expected.endpoints,
      compliantEndpoints: expected.compliant,
      outstanding: 4,
    });
    expect(h.overdueBySeverity).toEqual({ critical: 1, important: 1 });
  });

  it('the e-mail digest', async () => {
    const acts = createDigestActivities({ database: t, logger: createLogger('silent'), now: () => now });
    const d = await acts.buildComplianceDigest({ periodDays: 7 });
    expect(d).toMatchObject({
      endpoints: expected.endpoints,
      compliantEndpoints: expected.compliant,
      compliancePercent: expected.compliancePct,
    });
    expect(d.missingBySeverity).toEqual({ critical: 1, important: 2, low: 1 });
    expect(d.topMissing.map((p) => [p.patchId, p.endpoints])).toEqual([
      ['KB1', 1],
      ['DSA-1', 1],
      ['DSA-2', 1],
      ['DSA-3', 1],
    ]);
  });

  it('the report verb (Slack, Teams, CLI chat), for the fleet and for the scope it is given', async () => {
    const ctx = {
      identity: 'slack:U1',
      channel: 'slack' as const,
      service: fakeCycleService(),
      db: t.db,
      isAdmin: false,
      isApprover: false,
    };
    const all = await executeCommand({ verb: 'report' }, ctx);
    expect(all.data).toMatchObject(expected);
    expect(all.text).toContain('compliance: 50% (2 of 4 endpoints fully patched)');
    expect(all.text).toContain('outstanding patches by severity: 1 critical, 2 important, 1 low');

    const web = await executeCommand({ verb: 'report', scope: { groups: ['web'] } }, ctx);
    expect(web.data).toMatchObject({
      endpoints: 2,
      compliant: 1,
      compliancePct: 50,
      bySeverity: { critical: 0, important: 2, low: 1 },
      overdue: 1,
    });
    expect(web.text).toContain('compliance in group:web: 50% (1 of 2 endpoints fully patched)');
    const pci = await executeCommand({ verb: 'report', scope: { tags: ['pci'] } }, ctx);
    expect(pci.data).toMatchObject({ endpoints: 1, compliant: 0, compliancePct: 0 });
    const win = await executeCommand({ verb: 'report', scope: { osFamilies: ['windows'] } }, ctx);
    expect(win.data).toMatchObject({ endpoints: 1, compliant: 0, knownExploited: 1, overdue: 1 });
    const none = await executeCommand({ verb: 'report', scope: { endpointIds: ['old-1'] } }, ctx);
    expect(none.text).toBe('no endpoints in endpoint:old-1');
  });

  it('a scope naming every endpoint reads the base rows and agrees with the maintained aggregates', async () => {
    const fleet = await complianceSummary(t.db, { now });
    const scoped = await complianceSummary(t.db, {
      now,
      scope: { endpointIds: ['web-1', 'web-2', 'db-1', 'mac-1', 'old-1'] },
    });
    expect(scoped).toEqual(fleet);
    expect(await slaBreaches(t.db, { now, scope: { groups: ['db'] } })).toMatchObject([
      { endpointId: 'db-1', patchId: 'KB1' },
    ]);
  });

  it('wave pending counts held jobs on the dashboard as the workflow does', async () => {
    const detail = await cycleDetail(t.db, 'c1');
    const workflow = await new DrizzleAgentJobs(t.db).counts('c1', 1, 'install');
    expect(detail!.waves).toEqual([{ wave: 1, total: 6, succeeded: 1, failed: 1, unreachable: 0, pending: 3 }]);
    expect(workflow).toEqual({ total: 6, succeeded: 1, failed: 1, unreachable: 0, pending: 3 });
  });

  it('the SLA SQL is derived from the domain rule, known-exploited cap included', async () => {
    const policies: SlaPolicy[] = [
      DEFAULT_SLA,
      { ...DEFAULT_SLA, criticalDays: 3, knownExploitedDays: 7 },
      { ...DEFAULT_SLA, lowDays: 1, unspecifiedDays: 200 },
    ];
    for (const sla of policies) {
      for (const severity of [...SEVERITIES, 'bogus']) {
        for (const kev of [false, true]) {
          const r = await t.db.execute<{ d: number }>(
            sql`select ${slaDaysSql(sla, sql`${severity}::text`, sql`${kev}::boolean`)} as d`,
          );
          expect(Number(r.rows[0]!.d), `${severity} kev=${kev} ${JSON.stringify(sla)}`).toBe(
            slaDays({ severity: severity as never, knownExploited: kev }, sla),
          );
        }
      }
    }
  });

  it('the overview and the breach list apply a shorter severity clock under the known-exploited cap alike', async () => {
    const sla = { ...DEFAULT_SLA, criticalDays: 3, knownExploitedDays: 7 };
    const o = await overview(t.db, { now, sla });
    const breaches = await slaBreaches(t.db, { now, sla });
    expect(o.overdueBySeverity.critical).toBe(1);
    expect(breaches.find((b) => b.patchId === 'KB1')).toMatchObject({
      daysOverdue: daysOverdue({ severity: 'critical', knownExploited: true }, ago(10), now, sla),
    });
    expect(breaches.find((b) => b.patchId === 'KB1')!.daysOverdue).toBe(7);
    expect(compliancePercent(0, 0)).toBe(100);
  });
});
