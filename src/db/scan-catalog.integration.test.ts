/**
 * Many scans at once reporting the same catalog patches (a fleet-wide `scan all`): known catalog rows are only read,
 * a row is locked only when a report makes it more cautious, and every writer takes its locks in one order. So no
 * scan fails on a deadlock, no cautious change is lost between two scans, and each new patch is recorded as added
 * exactly once.
 */
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import type { FoundPatch } from '../shared/agent-protocol';
import { recordJobResult } from './agent-jobs';
import { addEnrollSecret } from './agent-enroll-secrets';
import { enrollAgent } from './agent-enrolment';
import { agentJobs, auditLog, endpointPatches, endpoints, patches } from './schema/index';

let tdb: TestDatabase;
const ENDPOINTS = 12;
// Over one 500-row statement, so a scan writes its catalog in several chunks.
const CATALOG = 700;

beforeAll(async () => {
  tdb = await createTestDatabase();
  await tdb.db.insert(endpoints).values(
    Array.from({ length: ENDPOINTS }, (_, i) => ({
      id: `ep-${i}`,
      machineId: `machine-${String(i).padStart(4, '0')}`,
      hostname: `ep-${i}`,
      osFamily: 'linux',
    })),
  );
});
afterAll(async () => {
  await tdb?.close();
});

const found = (n: number, endpoint: number): FoundPatch => ({
  patchId: `DSA-${String(n).padStart(4, '0')}-1`,
  title: `Update ${n}`,
  vendor: 'Debian',
  product: `pkg${n}`,
  type: 'security',
  // Endpoint 0 knows more than the others about every tenth patch: a higher severity and one more CVE.
  vendorSeverity: endpoint === 0 && n % 10 === 0 ? 'critical' : 'low',
  severitySource: 'debian',
  cves: endpoint === 0 && n % 10 === 0 ? [`CVE-2026-${n}`, `CVE-2026-9${n}`] : [`CVE-2026-${n}`],
  rebootRequired: false,
  packages: [{ manager: 'apt', name: `pkg${n}`, version: '1.0-1' }],
});

async function scanAll(round: string, extraCveFor: number[] = []) {
  await tdb.db.insert(agentJobs).values(
    Array.from({ length: ENDPOINTS }, (_, i) => ({
      id: `${round}-${i}`,
      endpointId: `ep-${i}`,
      kind: 'scan',
      payload: {},
      state: 'leased',
      leaseExpiresAt: new Date(Date.now() + 60_000),
    })),
  );
  return Promise.allSettled(
    Array.from({ length: ENDPOINTS }, (_, i) => {
      // Every endpoint reports the whole catalog, half of them in reverse order (the gateway sorts before it writes).
      const order = Array.from({ length: CATALOG }, (_, n) => (i % 2 === 0 ? n : CATALOG - 1 - n));
      const missing = order.map((n) => {
        const p = found(n, i);
        return extraCveFor.includes(i) ? { ...p, cves: [...p.cves, `CVE-2027-${i}-${n}`] } : p;
      });
      return recordJobResult(tdb.db, `ep-${i}`, `${round}-${i}`, {
        status: 'succeeded',
        missing,
        patches: [],
        rebootPending: false,
      });
    }),
  );
}

describe('scans at once on a shared catalog', () => {
  it('all succeed; each new patch is added once; the more cautious report wins', async () => {
    const first = await scanAll('scan-1');
    expect(first.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(await tdb.db.$count(patches)).toBe(CATALOG);
    expect(await tdb.db.$count(endpointPatches)).toBe(CATALOG * ENDPOINTS);

    const reported = await tdb.db
      .select({ details: auditLog.details })
      .from(auditLog)
      .where(eq(auditLog.action, 'catalog.patches.reported'));
    const added = reported.flatMap((r) => (r.details as { added: string[] }).added);
    expect(added.length).toBe(CATALOG);
    expect(new Set(added).size).toBe(CATALOG);

    const tenth = await tdb.db.select().from(patches).where(eq(patches.id, 'DSA-0010-1'));
    expect(tenth[0]!.severity).toBe('critical');
    expect([...tenth[0]!.cves].sort()).toEqual(['CVE-2026-10', 'CVE-2026-910']);
  });

  it('a rescan reporting one new CVE per patch from two endpoints at once keeps both, on every patch', async () => {
    const second = await scanAll('scan-2', [1, 2]);
    expect(second.filter((r) => r.status === 'rejected')).toEqual([]);
    const missingCve = await tdb.db.execute<{ n: number }>(sql`
      select count(*)::int as n from patches
      where not (cves @> array[('CVE-2027-1-' || (substring(id from 5 for 4))::int)::text,
                               ('CVE-2027-2-' || (substring(id from 5 for 4))::int)::text])`);
    expect(Number(missingCve.rows[0]!.n)).toBe(0);
  });

  it('first scans of new endpoints that each make different known patches more cautious, all at once: none deadlocks', async () => {
    // Each scan locks its own share of the (known) catalog rows to change them, while the foreign keys of its new
    // report rows check every row, the other scans' shares included. A lock that blocks those checks (FOR UPDATE)
    // made the scans wait on each other in a cycle: PostgreSQL's deadlock error (40P01), a 503 to the agent.
    const fresh = Array.from({ length: ENDPOINTS }, (_, i) => `fresh-${i}`);
    await tdb.db
      .insert(endpoints)
      .values(fresh.map((id) => ({ id, machineId: `machine-${id}`, hostname: id, osFamily: 'linux' })));
    await tdb.db.insert(agentJobs).values(
      fresh.map((id) => ({
        id: `first-${id}`,
        endpointId: id,
        kind: 'scan',
        payload: {},
        state: 'leased',
        leaseExpiresAt: new Date(Date.now() + 60_000),
      })),
    );
    const results = await Promise.allSettled(
      fresh.map((id, i) =>
        recordJobResult(tdb.db, id, `first-${id}`, {
          status: 'succeeded',
          missing: Array.from({ length: CATALOG }, (_, n) => {
            const p = found(n, 1);
            return n % ENDPOINTS === i ? { ...p, cves: [...p.cves, `CVE-2028-${i}-${n}`] } : p;
          }),
          patches: [],
          rebootPending: false,
        }),
      ),
    );
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const changed = await tdb.db.execute<{ n: number }>(sql`
      select count(*)::int as n from patches where exists (select 1 from unnest(cves) c where c like 'CVE-2028-%')`);
    expect(changed.rows[0]!.n).toBe(CATALOG);
  });

  it('enrolments of new machines during first scans that add catalog patches: none deadlocks', async () => {
    // An enrolment's new endpoint row locks its OS's compliance rollup row, then it appends to the audit chain; a
    // first scan that adds catalog patches appends first (holding the chain's lock) and then its patch rows flip its
    // endpoint's compliance on that same rollup row. Taken in those two orders the two waited on each other (40P01 in
    // the 10k cycle bench); the enrolment now takes the chain's lock first.
    const SECRET = 'scan-catalog-enrol-secret-0123456789';
    await addEnrollSecret(tdb.db, { name: 'deadlock', secret: SECRET });
    for (let round = 0; round < 3; round++) {
      const scanning = Array.from({ length: ENDPOINTS }, (_, i) => `race-${round}-${i}`);
      await tdb.db
        .insert(endpoints)
        .values(scanning.map((id) => ({ id, machineId: `machine-${id}`, hostname: id, osFamily: 'linux' })));
      await tdb.db.insert(agentJobs).values(
        scanning.map((id) => ({
          id: `race-${id}`,
          endpointId: id,
          kind: 'scan',
          payload: {},
          state: 'leased',
          leaseExpiresAt: new Date(Date.now() + 60_000),
        })),
      );
      const results = await Promise.allSettled([
        ...scanning.map((id, i) =>
          recordJobResult(tdb.db, id, `race-${id}`, {
            status: 'succeeded',
            // Patches no other scan reported: each scan adds catalog rows, so it appends to the audit chain.
            missing: Array.from({ length: 20 }, (_, n) => ({ ...found(n, 1), patchId: `RACE-${round}-${i}-${n}` })),
            patches: [],
            rebootPending: false,
          }),
        ),
        ...scanning.map((id) =>
          enrollAgent(
            tdb.db,
            { enrollSecret: SECRET, machineId: `new-${id}`, hostname: `new-${id}`, osFamily: 'linux' },
            new Date(),
            { scanOnFirstEnrolment: false },
          ),
        ),
      ]);
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    }
  });

  it('a rescan rewrites only what changed: a failed or installed patch reported missing again, not the rest', async () => {
    const row = (patchId: string) =>
      tdb.db
        .select()
        .from(endpointPatches)
        .where(sql`${endpointPatches.endpointId} = 'ep-4' and ${endpointPatches.patchId} = ${patchId}`)
        .then((r) => r[0]!);
    await tdb.db.execute(sql`update endpoint_patches set state = 'failed', last_error = 'dpkg error'
      where endpoint_id = 'ep-4' and patch_id = 'DSA-0001-1'`);
    await tdb.db.execute(sql`update endpoint_patches set state = 'installed', installed_at = now()
      where endpoint_id = 'ep-4' and patch_id = 'DSA-0002-1'`);
    // As the install results that change these rows do (recordJobResult): the next scan is written in full.
    await tdb.db.execute(sql`update endpoints set last_scan_digest = null where id = 'ep-4'`);
    const untouched = await row('DSA-0003-1');
    const results = await scanAll('scan-3');
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const [failed, installed, same] = [await row('DSA-0001-1'), await row('DSA-0002-1'), await row('DSA-0003-1')];
    expect([failed.state, failed.lastError, failed.lastJobId]).toEqual(['missing', 'dpkg error', 'scan-3-4']);
    expect([installed.state, installed.lastJobId]).toEqual(['missing', 'scan-3-4']);
    expect([same.state, same.lastJobId, same.updatedAt]).toEqual(['missing', untouched.lastJobId, untouched.updatedAt]);
  });

  it('an identical rescan writes nothing; after an install result changed a row, the next one is written in full', async () => {
    const row = (patchId: string) =>
      tdb.db
        .select()
        .from(endpointPatches)
        .where(sql`${endpointPatches.endpointId} = 'ep-6' and ${endpointPatches.patchId} = ${patchId}`)
        .then((r) => r[0]!);
    const digest = async () =>
      (await tdb.db.select().from(endpoints).where(eq(endpoints.id, 'ep-6')))[0]!.lastScanDigest;
    await scanAll('scan-4');
    expect(await digest()).toMatch(/^[0-9a-f]{64}$/);
    // Behind the scan's back (no job): an identical rescan does not look at the rows at all.
    await tdb.db.execute(sql`update endpoint_patches set last_job_id = 'marker'
      where endpoint_id = 'ep-6' and patch_id = 'DSA-0005-1'`);
    await scanAll('scan-5');
    expect((await row('DSA-0005-1')).lastJobId).toBe('marker');

    // An install result changes the rows (and clears the digest): the next identical scan is applied in full, so a
    // patch the agent still reports missing is missing again, whatever the install said.
    await tdb.db.insert(agentJobs).values({
      id: 'install-ep-6',
      endpointId: 'ep-6',
      kind: 'install',
      payload: {},
      state: 'leased',
      leaseExpiresAt: new Date(Date.now() + 60_000),
    });
    await recordJobResult(tdb.db, 'ep-6', 'install-ep-6', {
      status: 'succeeded',
      patches: [{ patchId: 'DSA-0005-1', state: 'installed' }],
      rebootPending: false,
    });
    expect((await row('DSA-0005-1')).state).toBe('installed');
    expect(await digest()).toBeNull();
    await scanAll('scan-6');
    expect((await row('DSA-0005-1')).state).toBe('missing');
    expect(await digest()).toMatch(/^[0-9a-f]{64}$/);
  });
});
