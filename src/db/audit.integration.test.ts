import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { appendAudit, GENESIS_HASH, verifyAuditChain } from './audit';

describe('audit log', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t.close();
  });

  it('chains entries and verifies an untouched chain', async () => {
    const a = await appendAudit(t.db, {
      actor: 'cli:ops',
      action: 'cycle.started',
      subjectType: 'cycle',
      subjectId: 'C-1',
      details: { b: 1, a: [2, 3] },
    });
    const b = await appendAudit(t.db, {
      actor: 'slack:U1',
      action: 'cycle.approved',
      subjectType: 'cycle',
      subjectId: 'C-1',
    });
    expect(a.prevHash).toBe(GENESIS_HASH);
    expect(b.prevHash).toBe(a.hash);
    await expect(verifyAuditChain(t.db)).resolves.toEqual({ ok: true, rows: 2 });
  });

  it('serialises concurrent appends into one chain', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        appendAudit(t.db, { actor: 'system', action: 'job.result', subjectType: 'job', subjectId: `J-${i}` }),
      ),
    );
    const v = await verifyAuditChain(t.db);
    expect(v.ok).toBe(true);
  });

  it.each(['update audit_log set actor = $$x$$', 'delete from audit_log', 'truncate audit_log'])(
    'refuses %s',
    async (stmt) => {
      const err = await t.db.execute(sql.raw(stmt)).then(
        () => undefined,
        (e: Error) => e,
      );
      // drizzle wraps the driver's error: PostgreSQL's own message is the cause.
      expect(String((err?.cause as Error | undefined)?.message)).toMatch(/audit_log is append-only/);
    },
  );

  it('names the first altered row', async () => {
    const target = await appendAudit(t.db, {
      actor: 'web:alice',
      action: 'exception.added',
      subjectType: 'exception',
      subjectId: 'EXC-1',
    });
    await appendAudit(t.db, {
      actor: 'web:alice',
      action: 'exception.removed',
      subjectType: 'exception',
      subjectId: 'EXC-1',
    });
    // An attacker with superuser rights switches the trigger off and edits a row.
    await t.db.execute(sql.raw('alter table audit_log disable trigger audit_log_no_update'));
    await t.db.execute(sql`update audit_log set actor = 'web:mallory' where id = ${target.id}`);
    await t.db.execute(sql.raw('alter table audit_log enable trigger audit_log_no_update'));
    const v = await verifyAuditChain(t.db);
    expect(v).toMatchObject({ ok: false, brokenId: target.id });
    if (!v.ok) expect(v.reason).toMatch(/altered/);
  });
});
