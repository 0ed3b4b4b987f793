/**
 * slaBreaches reads a page (limit, offset) class by class from the outstanding-rows index instead of sorting every
 * breach. Whatever the data, a page must be exactly that slice of the whole list, and the whole list exactly what the
 * domain's rules give row by row (daysOverdue > 0, counted endpoints only, most overdue first, then hostname, patch
 * id, endpoint id in code-point order). Property-based: fast-check draws fleets full of ties (many rows on the same
 * UTC day, repeated and mixed-case hostnames), SLA policies and pages.
 */
import fc from 'fast-check';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { daysOverdue, OUTSTANDING_STATES } from '../../domain/compliance';
import { SEVERITIES } from '../../domain/patch';
import { type SlaPolicy } from '../../domain/risk';
import { endpointPatches, endpoints, patches } from '../schema/index';
import { slaBreaches, type SlaBreach } from './compliance';

const DAY = 86_400_000;
const STATES = ['missing', 'missing', 'failed', 'installed', 'not_applicable', 'pending_reboot'];
const HOSTS = ['a', 'B', 'b', 'web-1', 'Web-1', 'db'];

describe('slaBreaches: a page is the slice of the whole, the whole is the rule', () => {
  let t: TestDatabase;
  const now = new Date(Date.UTC(2026, 5, 15, 9, 30));
  const today = Math.floor(now.getTime() / DAY);

  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t?.close();
  });

  const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  function expected(
    fleet: Array<{ id: string; hostname: string; retired: boolean }>,
    catalog: Array<{ id: string; severity: string; kev: boolean }>,
    rows: Array<{ e: number; p: number; state: string; detected: Date }>,
    sla: SlaPolicy,
  ): SlaBreach[] {
    const out: SlaBreach[] = [];
    for (const r of rows) {
      const e = fleet[r.e]!;
      const p = catalog[r.p]!;
      if (e.retired || !(OUTSTANDING_STATES as readonly string[]).includes(r.state)) continue;
      const over = daysOverdue({ severity: p.severity, knownExploited: p.kev }, r.detected, now, sla);
      if (over <= 0) continue;
      out.push({
        endpointId: e.id,
        hostname: e.hostname,
        patchId: p.id,
        severity: p.severity,
        knownExploited: p.kev,
        state: r.state,
        detectedAt: r.detected.toISOString(),
        dueAt: new Date((today - over) * DAY).toISOString(),
        daysOverdue: over,
      });
    }
    return out.sort(
      (a, b) =>
        b.daysOverdue - a.daysOverdue ||
        compare(a.hostname, b.hostname) ||
        compare(a.patchId, b.patchId) ||
        compare(a.endpointId, b.endpointId),
    );
  }

  it('for drawn fleets, policies and pages', async () => {
    // Few distinct days, so that rows of one class often share the day a page ends on.
    const day = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(25, 31, 33));
    const instant = fc
      .tuple(day, fc.integer({ min: 0, max: DAY - 1 }))
      .map(([d, ms]) => new Date((today - d) * DAY + ms));
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            hostname: fc.constantFrom(...HOSTS),
            retired: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
          }),
          {
            minLength: 4,
            maxLength: 16,
            size: 'max',
          },
        ),
        fc.array(fc.record({ severity: fc.constantFrom(...SEVERITIES, 'vendor-odd'), kev: fc.boolean() }), {
          minLength: 1,
          maxLength: 5,
        }),
        fc.array(
          fc.record({
            e: fc.nat(),
            p: fc.nat(),
            state: fc.constantFrom(...STATES),
            // Often several rows on one instant or one day: the ties the page boundary must keep.
            detected: fc.oneof(instant, fc.constant(new Date((today - 20) * DAY + 5_000))),
          }),
          // size 'max': fast-check's default keeps arrays near ten rows, too few for ties across a page's end.
          { minLength: 20, maxLength: 150, size: 'max' },
        ),
        fc.record({
          criticalDays: fc.integer({ min: 0, max: 20 }),
          importantDays: fc.integer({ min: 0, max: 30 }),
          moderateDays: fc.integer({ min: 0, max: 30 }),
          lowDays: fc.integer({ min: 0, max: 30 }),
          unspecifiedDays: fc.integer({ min: 0, max: 30 }),
          knownExploitedDays: fc.integer({ min: 0, max: 10 }),
        }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 1, max: 8 })), {
          minLength: 1,
          maxLength: 6,
        }),
        async (hosts, cat, drawn, sla, pages) => {
          const fleet = hosts.map((h, i) => ({ id: `E${i}`, ...h }));
          const catalog = cat.map((c, i) => ({ id: `P${i}`, ...c }));
          const seen = new Set<string>();
          const rows = drawn
            .map((r) => ({ ...r, e: r.e % fleet.length, p: r.p % catalog.length }))
            .filter((r) => !seen.has(`${r.e}/${r.p}`) && seen.add(`${r.e}/${r.p}`));
          await t.db.execute(sql`delete from endpoint_patches`);
          await t.db.execute(sql`delete from endpoints`);
          await t.db.execute(sql`delete from patches`);
          await t.db.insert(endpoints).values(
            fleet.map((e) => ({
              id: e.id,
              machineId: `m-${e.id}`,
              hostname: e.hostname,
              osFamily: 'linux',
              osName: 'Debian',
              ...(e.retired ? { status: 'retired' } : {}),
            })),
          );
          await t.db.insert(patches).values(
            catalog.map((p) => ({
              id: p.id,
              title: p.id,
              vendor: 'Debian',
              type: 'security',
              severity: p.severity,
              knownExploited: p.kev,
              osFamily: 'linux',
            })),
          );
          if (rows.length) {
            await t.db.insert(endpointPatches).values(
              rows.map((r) => ({
                endpointId: fleet[r.e]!.id,
                patchId: catalog[r.p]!.id,
                state: r.state,
                detectedAt: r.detected,
              })),
            );
          }
          const want = expected(fleet, catalog, rows, sla);
          expect(await slaBreaches(t.db, { now, sla })).toEqual(want);
          for (const [offset, limit] of pages) {
            expect(await slaBreaches(t.db, { now, sla, limit, offset }), `limit ${limit} offset ${offset}`).toEqual(
              want.slice(offset, offset + limit),
            );
          }
          expect(await slaBreaches(t.db, { now, sla, offset: 2 })).toEqual(want.slice(2));
        },
      ),
      { numRuns: 80, seed: Number(process.env.FC_SEED ?? 20261207) },
    );
  });

  it('a page that ends inside a day keeps the rest of that day (the hostname order decides)', async () => {
    await t.db.execute(sql`delete from endpoint_patches`);
    await t.db.execute(sql`delete from endpoints`);
    await t.db.execute(sql`delete from patches`);
    await t.db
      .insert(patches)
      .values({ id: 'P', title: 'P', vendor: 'Debian', type: 'security', severity: 'critical', osFamily: 'linux' });
    await t.db.insert(endpoints).values([
      { id: 'E0', machineId: 'm0', hostname: 'zeta', osFamily: 'linux', osName: 'Debian' },
      { id: 'E1', machineId: 'm1', hostname: 'alpha', osFamily: 'linux', osName: 'Debian' },
    ]);
    // Detected 30 days ago, zeta at 01:00 UTC and alpha at 05:00: alpha is first, though detected later.
    const day = (today - 30) * DAY;
    await t.db.insert(endpointPatches).values([
      { endpointId: 'E0', patchId: 'P', state: 'missing', detectedAt: new Date(day + 3_600_000) },
      { endpointId: 'E1', patchId: 'P', state: 'missing', detectedAt: new Date(day + 5 * 3_600_000) },
    ]);
    expect((await slaBreaches(t.db, { now, limit: 1 })).map((b) => b.hostname)).toEqual(['alpha']);
    expect((await slaBreaches(t.db, { now, limit: 1, offset: 1 })).map((b) => b.hostname)).toEqual(['zeta']);
  });

  it('reads a page through the outstanding-rows index, not by sorting every breach', async () => {
    // The plan of one class's boundary query on a table large enough for the planner to prefer the index.
    await t.db.execute(sql`delete from endpoint_patches`);
    await t.db.execute(sql`delete from endpoints`);
    await t.db.execute(sql`delete from patches`);
    await t.db.execute(sql`insert into patches (id, title, vendor, type, severity, os_family)
      select 'P' || g, 'P', 'Debian', 'security', 'critical', 'linux' from generate_series(1, 20) g`);
    await t.db.execute(sql`insert into endpoints (id, machine_id, hostname, os_family, os_name)
      select 'E' || g, 'm' || g, 'h' || g, 'linux', 'Debian' from generate_series(1, 2000) g`);
    await t.db.execute(sql`insert into endpoint_patches (endpoint_id, patch_id, state, detected_at)
      select 'E' || e, 'P' || p, case when (e + p) % 3 = 0 then 'installed' else 'missing' end,
             now() - (((e * 7 + p) % 90) || ' days')::interval
      from generate_series(1, 2000) e cross join generate_series(1, 20) p`);
    await t.db.execute(sql`analyze`);
    const page = await slaBreaches(t.db, { limit: 50 });
    expect(page).toHaveLength(50);
    expect(page).toEqual((await slaBreaches(t.db)).slice(0, 50));
    const plan = await t.db.execute<{ 'QUERY PLAN': string }>(sql`explain select ep.detected_at
      from endpoint_patches ep join patches p on p.id = ep.patch_id join endpoints e on e.id = ep.endpoint_id
      where ep.state in ('missing', 'failed') and e.status <> 'retired' and p.severity = 'critical'
        and ep.detected_at < now() - interval '14 days'
      order by ep.detected_at offset 49 limit 1`);
    expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toContain('endpoint_patches_outstanding_detected_idx');
  });
});
