/** Builds what a cycle test needs in its own database: endpoints in groups, patches, missing rows, a policy, approvers. */
import { sql } from 'drizzle-orm';
import type { Db } from '../../src/db/client';
import { grantRole } from '../../src/db/identities';
import { savePolicy } from '../../src/db/policies';
import { endpointGroups, endpointPatches, endpoints, groupMembers, patches } from '../../src/db/schema/index';
import type { DeploymentPolicyInput } from '../../src/domain/policy';

export interface FleetSpec {
  /** Prefix of this fleet's ids (unique per test). */
  prefix: string;
  testEndpoints: number;
  endpoints: number;
  patch?: { type?: string; severity?: string; knownExploited?: boolean };
  /** When the endpoints were last scanned (the seeded missing rows are that scan's findings); default now; null = never (no missing rows). */
  lastScanAt?: Date | null;
}

/** Endpoints <prefix>-t<n> in group <prefix>-test and <prefix>-e<n> in group <prefix>-prod, one missing patch each. */
export async function seedFleet(
  db: Db,
  f: FleetSpec,
): Promise<{ testGroup: string; prodGroup: string; patchId: string; endpointIds: string[] }> {
  const testGroup = `${f.prefix}-test`;
  const prodGroup = `${f.prefix}-prod`;
  const patchId = `KB-${f.prefix}`;
  const [tg] = await db.insert(endpointGroups).values({ name: testGroup, isTestGroup: true }).returning();
  const [pg] = await db.insert(endpointGroups).values({ name: prodGroup }).returning();
  await db.insert(patches).values({
    id: patchId,
    title: `Security update ${f.prefix}`,
    vendor: 'Microsoft',
    type: f.patch?.type ?? 'security',
    severity: f.patch?.severity ?? 'important',
    cvss: 7.5,
    cves: ['CVE-2026-0001'],
    knownExploited: f.patch?.knownExploited ?? false,
    osFamily: 'windows',
    packages: [{ manager: 'windows-update', name: patchId }],
  });
  const ids: string[] = [];
  const rows = [
    ...Array.from({ length: f.testEndpoints }, (_, i) => ({ id: `${f.prefix}-t${i}`, group: tg!.id })),
    ...Array.from({ length: f.endpoints }, (_, i) => ({
      id: `${f.prefix}-e${String(i).padStart(6, '0')}`,
      group: pg!.id,
    })),
  ];
  for (let i = 0; i < rows.length; i += 1000) {
    const chunk = rows.slice(i, i + 1000);
    await db.insert(endpoints).values(
      chunk.map((r) => ({
        id: r.id,
        machineId: `m-${r.id}`,
        hostname: `${r.id}.example.test`,
        osFamily: 'windows',
        lastSeenAt: new Date(),
        lastScanAt: f.lastScanAt === undefined ? new Date() : f.lastScanAt,
      })),
    );
    await db.insert(groupMembers).values(chunk.map((r) => ({ groupId: r.group, endpointId: r.id })));
    if (f.lastScanAt !== null)
      await db.insert(endpointPatches).values(chunk.map((r) => ({ endpointId: r.id, patchId, state: 'missing' })));
    ids.push(...chunk.map((r) => r.id));
  }
  return { testGroup, prodGroup, patchId, endpointIds: ids };
}

/** A fast policy for tests (seconds, not hours), as a policy document (what `POST /api/v1/policies` takes). */
export function testPolicyDocument(
  name: string,
  testGroup: string,
  overrides: Partial<DeploymentPolicyInput> = {},
): DeploymentPolicyInput {
  return {
    name,
    test: { group: testGroup, soakSeconds: 1, failureThreshold: { percent: 50, count: 0 } },
    waves: [
      { name: 'pilot', percent: 50 },
      { name: 'broad', percent: 50 },
    ],
    failureThreshold: { percent: 30, count: 0 },
    // Small limits so every wave exercises held jobs being released as others finish.
    concurrency: 3,
    batchSize: 2,
    maintenance: { respectWindows: false, expectedInstallMinutes: 0 },
    jobs: { unreachableAfterSeconds: 60, pollIntervalSeconds: 1 },
    approval: { approverGroups: ['ops'], quorum: { low: 1, moderate: 1, high: 2, critical: 2 } },
    ...overrides,
  } as DeploymentPolicyInput;
}

/** A fast policy for tests: seconds, not hours. */
export async function saveTestPolicy(
  db: Db,
  name: string,
  testGroup: string,
  overrides: Partial<DeploymentPolicyInput> = {},
): Promise<void> {
  await savePolicy(db, testPolicyDocument(name, testGroup, overrides), 'cli:test');
}

export async function grantApprovers(db: Db, identities: string[], group = 'ops'): Promise<void> {
  for (const identity of identities)
    await grantRole(db, { identity, role: 'approver', groupName: group, by: 'cli:test' });
}

export async function countRows(db: Db, table: string, where = 'true'): Promise<number> {
  const r = await db.execute<{ n: number }>(sql.raw(`select count(*)::int as n from ${table} where ${where}`));
  return Number(r.rows[0]!.n);
}
