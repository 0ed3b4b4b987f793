/**
 * Attacks on the audit log by the database's own roles (issue #11 item 4): the owner who can switch the triggers
 * off, and the application's role. Each attack runs against the real database; the log must be found out (the
 * keyed chain and the signed checkpoint) or the statement refused, with nothing changed.
 */
import { createHash, createHmac } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { asc, sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loggedInCli } from '../../test/helpers/cli-session';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { apiRoutes } from '../api';
import { buildServer } from '../server/app';
import type { CycleService } from '../services/cycle-service';
import { loadConfig } from '../config/index';
import { createLogger } from '../logging';
import { startDatabase } from '../runtime/database';
import { freePort } from '../temporal/dev-server';
import { appendAudit, auditKeysFrom, currentAuditKeys, useAuditKeys, verifyAuditChain, verifyAuditLog } from './audit';
import { readAuditCheckpoint, writeAuditCheckpoint } from './audit-checkpoint';
import { connectDatabase } from './client';
import { auditLog } from './schema/index';
import { SecretBox } from './secret-box';

const SECRETS_KEY = 'cd'.repeat(32);
// This process and the CLI processes it runs key the chain alike.
useAuditKeys(auditKeysFrom(SecretBox.fromString(SECRETS_KEY)));

const open: TestDatabase[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const t of open) await t.close();
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-audit-'));
  dirs.push(d);
  return d;
}

/** A database with six audit rows and a checkpoint at the sixth. */
async function loggedDatabase(): Promise<{ t: TestDatabase; ids: number[]; file: string; dir: string }> {
  const t = await createTestDatabase();
  open.push(t);
  const ids: number[] = [];
  for (let i = 1; i <= 6; i++) {
    ids.push(
      (
        await appendAudit(t.db, {
          actor: 'web:alice',
          action: 'exception.added',
          subjectType: 'exception',
          subjectId: `EXC-${i}`,
          details: { i },
        })
      ).id,
    );
  }
  const dir = await tempDir();
  const file = path.join(dir, 'audit-checkpoint.json');
  const cp = await writeAuditCheckpoint(t.db, file, currentAuditKeys());
  expect(cp.written).toMatchObject({ headId: ids[5], rows: 6, keyedFrom: ids[0] });
  return { t, ids, file, dir };
}

/** The owner (a superuser here) switches the user triggers off, does `statements`, and switches them on again. */
async function asOwnerWithTriggersOff(
  t: TestDatabase,
  statements: (db: TestDatabase['db']) => Promise<void>,
): Promise<void> {
  await t.db.execute(sql.raw('alter table audit_log disable trigger user'));
  await statements(t.db);
  await t.db.execute(sql.raw('alter table audit_log enable trigger user'));
}

/** Re-chains every row after `afterId` the way someone without the key could: `hashOf` computes each hash. */
async function rechain(
  db: TestDatabase['db'],
  afterId: number,
  hashOf: (row: typeof auditLog.$inferSelect, prev: string) => { hash: string; keyId: string | null },
) {
  const rows = await db.select().from(auditLog).orderBy(asc(auditLog.id));
  let prev = rows.filter((r) => r.id <= afterId).at(-1)?.hash ?? '0'.repeat(64);
  for (const row of rows.filter((r) => r.id > afterId)) {
    const { hash, keyId } = hashOf(row, prev);
    await db.execute(
      sql`update audit_log set prev_hash = ${prev}, hash = ${hash}, key_id = ${keyId} where id = ${row.id}`,
    );
    prev = hash;
  }
}

const content = (r: typeof auditLog.$inferSelect) =>
  JSON.stringify({
    action: r.action,
    actor: r.actor,
    at: r.at.toISOString(),
    details: r.details,
    subjectId: r.subjectId,
    subjectType: r.subjectType,
  });

describe('the audit log against its database owner (keyed chain, signed checkpoint)', () => {
  const attacks: Array<{
    name: string;
    attack: (t: TestDatabase, ids: number[]) => Promise<void>;
    badRow: (ids: number[]) => number;
    reason: RegExp;
  }> = [
    {
      name: 'middle row deleted',
      attack: (t, ids) =>
        asOwnerWithTriggersOff(
          t,
          async (db) => void (await db.execute(sql`delete from audit_log where id = ${ids[2]}`)),
        ),
      badRow: (ids) => ids[3]!,
      reason: /removed or altered.*not in the log/,
    },
    {
      name: 'row deleted, rest re-chained (SHA-256)',
      attack: (t, ids) =>
        asOwnerWithTriggersOff(t, async (db) => {
          await db.execute(sql`delete from audit_log where id = ${ids[2]}`);
          await rechain(db, ids[1]!, (r, prev) => ({
            hash: createHash('sha256').update(prev).update('\n').update(content(r)).digest('hex'),
            keyId: null,
          }));
        }),
      badRow: (ids) => ids[3]!,
      reason: /not keyed/,
    },
    {
      name: 'row deleted, all re-chained unkeyed',
      attack: (t, ids) =>
        asOwnerWithTriggersOff(t, async (db) => {
          await db.execute(sql`delete from audit_log where id = ${ids[2]}`);
          await rechain(db, 0, (r, prev) => ({
            hash: createHash('sha256').update(prev).update('\n').update(content(r)).digest('hex'),
            keyId: null,
          }));
        }),
      badRow: (ids) => ids[0]!,
      reason: /not keyed, but every row from \d+ on is/,
    },
    {
      name: 'row deleted, re-chained, guessed key',
      attack: (t, ids) =>
        asOwnerWithTriggersOff(t, async (db) => {
          await db.execute(sql`delete from audit_log where id = ${ids[2]}`);
          const guess = Buffer.alloc(32, 1);
          await rechain(db, ids[1]!, (r, prev) => ({
            hash: createHmac('sha256', guess)
              .update(`patchops-audit:v1\n${r.id}\n${prev}\n`)
              .update(content(r))
              .digest('hex'),
            keyId: r.keyId,
          }));
        }),
      badRow: (ids) => ids[3]!,
      reason: /does not match its keyed hash/,
    },
    {
      name: 'tail cut (last two rows deleted)',
      attack: (t, ids) =>
        asOwnerWithTriggersOff(
          t,
          async (db) => void (await db.execute(sql`delete from audit_log where id >= ${ids[4]}`)),
        ),
      badRow: (ids) => ids[5]!,
      reason: /recorded row \d+ as the head, but the log ends at row \d+: rows \d+–\d+ were cut from the tail/,
    },
    {
      name: 'tail cut, then new rows appended',
      attack: async (t, ids) => {
        await asOwnerWithTriggersOff(
          t,
          async (db) => void (await db.execute(sql`delete from audit_log where id >= ${ids[4]}`)),
        );
        await appendAudit(t.db, {
          actor: 'web:mallory',
          action: 'exception.added',
          subjectType: 'exception',
          subjectId: 'EXC-X',
        });
      },
      badRow: (ids) => ids[5]!,
      reason: /the head recorded by the checkpoint .* is missing: it was deleted/,
    },
    {
      name: 'head row rewritten in place',
      attack: (t, ids) =>
        asOwnerWithTriggersOff(
          t,
          async (db) => void (await db.execute(sql`update audit_log set actor = 'web:mallory' where id = ${ids[5]}`)),
        ),
      badRow: (ids) => ids[5]!,
      reason: /does not match its keyed hash/,
    },
  ];

  it.each(attacks)(
    '$name: verify names the row, and the checkpoint is not moved over it',
    async ({ attack, badRow, reason }) => {
      const { t, ids, file } = await loggedDatabase();
      const before = await fs.readFile(file, 'utf8');
      await attack(t, ids);
      const report = await verifyAuditLog(t.db, { anchor: await readAuditCheckpoint(file, currentAuditKeys()) });
      expect(report.ok).toBe(false);
      expect(report.problem?.id).toBe(badRow(ids));
      expect(report.problem?.reason).toMatch(reason);
      // The checkpoint writer does not move the checkpoint over the tampered head (it checks from the last head on;
      // the full walk above is what finds a row changed before it).
      const cp = await writeAuditCheckpoint(t.db, file, currentAuditKeys());
      expect(cp.written === null || cp.written.headId === ids[5]).toBe(true);
      expect(await fs.readFile(file, 'utf8')).toBe(before);
    },
  );

  it('an altered checkpoint file is refused', async () => {
    const { file } = await loggedDatabase();
    const cp = JSON.parse(await fs.readFile(file, 'utf8')) as { headId: number; rows: number };
    await fs.writeFile(file, JSON.stringify({ ...cp, headId: cp.headId - 2, rows: cp.rows - 2 }));
    await expect(readAuditCheckpoint(file, currentAuditKeys())).rejects.toThrow(
      /fails its signature check: it was altered/,
    );
  });

  it('rows from before keying verify as unkeyed, and no unkeyed row may follow a keyed one', async () => {
    const t = await createTestDatabase();
    open.push(t);
    // Two rows as the code before keying wrote them (plain SHA-256, no key id), then keyed ones.
    let prev = '0'.repeat(64);
    for (const i of [1, 2]) {
      const at = new Date(Date.UTC(2026, 0, i));
      const row = {
        at,
        actor: 'cli:ops',
        action: 'policy.saved',
        subjectType: 'policy',
        subjectId: `p${i}`,
        details: {},
      };
      const hash = createHash('sha256')
        .update(prev)
        .update('\n')
        .update(
          JSON.stringify({
            action: row.action,
            actor: row.actor,
            at: at.toISOString(),
            details: {},
            subjectId: row.subjectId,
            subjectType: row.subjectType,
          }),
        )
        .digest('hex');
      await t.db.insert(auditLog).values({ ...row, prevHash: prev, hash });
      prev = hash;
    }
    const keyed = await appendAudit(t.db, {
      actor: 'cli:ops',
      action: 'policy.saved',
      subjectType: 'policy',
      subjectId: 'p3',
    });
    await expect(verifyAuditLog(t.db)).resolves.toMatchObject({
      ok: true,
      rows: 3,
      unkeyedRows: 2,
      keyedFrom: keyed.id,
    });
    await expect(verifyAuditChain(t.db)).resolves.toEqual({ ok: true, rows: 3 });
  });

  it('the real `patchops audit verify` (through the API) passes an intact log, then names a cut tail and exits 1', async () => {
    const { t, ids, dir } = await loggedDatabase();
    const checkpoint = path.join(dir, 'server-checkpoint.json');
    const logger = createLogger('silent');
    const app = await buildServer({
      logger,
      health: [],
      routes: [apiRoutes({ db: t.db, service: {} as CycleService, logger, auditCheckpointFile: checkpoint })],
    });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const addr = app.server.address();
      const cli = await loggedInCli(`http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, t.db, {
        username: 'auditor',
        role: 'admin',
      });
      const ok = await cli(['audit', 'verify']);
      expect(ok.stderr).toBe('');
      // The six rows, the auditor's login and the token made for the CLI (audited), and the CLI's whoami call.
      expect(ok.stdout).toMatch(new RegExp(`audit chain intact: \\d+ rows verified \\(keyed from row ${ids[0]}\\)`));
      expect(ok.stdout).toMatch(/checkpoint moved to head row \d+/);
      expect((await fs.stat(checkpoint)).mode & 0o777).toBe(0o600);
      const written = await fs.readFile(checkpoint, 'utf8');

      await asOwnerWithTriggersOff(
        t,
        async (db) => void (await db.execute(sql`delete from audit_log where id >= ${ids[3]}`)),
      );
      const cut = await cli(['audit', 'verify']);
      expect(cut.code).toBe(1);
      expect(cut.stderr).toMatch(/audit chain BROKEN at row \d+/);
      expect(cut.stderr).toMatch(/were cut from the tail|is missing: it was deleted/);
      expect(await fs.readFile(checkpoint, 'utf8')).toBe(written);
    } finally {
      await app.close();
    }
  });
});

// The role is per connection only on a real PostgreSQL server: PGlite is one session for every connection.
if (!process.env.DATABASE_URL) {
  console.warn(
    'DATABASE_URL is not set: the patchops_app role and killed-connection checks need a real PostgreSQL server and are skipped (PGlite is one session)',
  );
}
describe.skipIf(!process.env.DATABASE_URL)('the application role (patchops_app) on PostgreSQL', () => {
  let t: TestDatabase;
  let running: Awaited<ReturnType<typeof startDatabase>>;
  beforeAll(async () => {
    t = await createTestDatabase();
    open.push(t);
    const config = loadConfig({
      DATABASE_URL: t.url,
      SECRETS_KEY,
      PATCHOPS_DATA_DIR: await tempDir(),
      PATCHOPS_AUDIT_CHECKPOINT_MINUTES: '0',
    });
    running = await startDatabase(config, createLogger('silent'));
    await appendAudit(running.database.db, {
      actor: 'cli:ops',
      action: 'policy.saved',
      subjectType: 'policy',
      subjectId: 'p1',
    });
    await appendAudit(running.database.db, {
      actor: 'cli:ops',
      action: 'policy.saved',
      subjectType: 'policy',
      subjectId: 'p2',
    });
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('is the role the running application acts as', async () => {
    const r = await running.database.db.execute<{ u: string }>(sql`select current_user as u`);
    expect(r.rows[0]!.u).toBe('patchops_app');
  });

  it.each([
    'alter table audit_log disable trigger user',
    'alter table audit_log disable trigger audit_log_no_update',
    'drop trigger audit_log_no_update on audit_log',
    'delete from audit_log',
    "update audit_log set actor = 'web:mallory'",
    'truncate audit_log',
    'drop table audit_log',
    'alter table audit_log add column note text',
    'alter table audit_log owner to patchops_app',
    'create trigger audit_log_x before insert on audit_log for each row execute function patchops_audit_log_refuse()',
  ])('refuses %s, and nothing changes', async (stmt) => {
    const before = await t.db.select().from(auditLog).orderBy(asc(auditLog.id));
    const err = await running.database.db.execute(sql.raw(stmt)).then(
      () => undefined,
      (e: Error) => e,
    );
    // PostgreSQL's own privilege check (not the append-only trigger, which the owner can switch off) refuses it.
    expect(String((err?.cause as Error | undefined)?.message)).toMatch(/permission denied|must be owner/);
    expect(await t.db.select().from(auditLog).orderBy(asc(auditLog.id))).toEqual(before);
    await expect(verifyAuditChain(t.db)).resolves.toEqual({ ok: true, rows: before.length });
  });
});

describe('appending under database failures', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    open.push(t);
  });
  const pools: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const p of pools.splice(0)) await p.close();
  });

  it.skipIf(!process.env.DATABASE_URL)(
    'retries an append whose connection is killed, and records it exactly once',
    async () => {
      const victim = connectDatabase(t.url, { max: 1, applicationName: 'audit-victim' });
      pools.push(victim);
      await victim.db.execute(sql`select 1`);
      // Hold the append lock so the victim's append waits, then kill the victim's backend mid-append.
      const holder = await t.pool.connect();
      try {
        await holder.query('begin');
        await holder.query('select pg_advisory_xact_lock($1)', [0x70617463]);
        const appending = appendAudit(
          victim.db,
          { actor: 'slack:U1', action: 'cycle.paused', subjectType: 'cycle', subjectId: 'C-retry' },
          { backoffMs: 50 },
        );
        const settled = appending.then(
          () => 'ok',
          (e: Error) => e,
        );
        for (let i = 0; i < 100; i++) {
          const r = await holder.query(
            `select pg_terminate_backend(pid) as killed from pg_stat_activity where application_name = 'audit-victim' and wait_event_type = 'Lock'`,
          );
          if (r.rowCount) break;
          await new Promise((res) => setTimeout(res, 50));
        }
        await holder.query('commit');
        expect(await settled).toBe('ok');
      } finally {
        holder.release();
      }
      const rows = await t.db
        .select()
        .from(auditLog)
        .where(sql`${auditLog.subjectId} = 'C-retry'`);
      expect(rows).toHaveLength(1);
      await expect(verifyAuditChain(t.db)).resolves.toMatchObject({ ok: true });
    },
  );

  it('fails visibly, naming the action that was not recorded, when the database stays away', async () => {
    const gone = connectDatabase(`postgres://postgres:x@127.0.0.1:${await freePort()}/postgres`, { max: 1 });
    pools.push(gone);
    const started = Date.now();
    const err = await appendAudit(
      gone.db,
      { actor: 'slack:U1', action: 'cycle.cancelled', subjectType: 'cycle', subjectId: 'C-9' },
      { attempts: 3, backoffMs: 100 },
    ).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe('DEPENDENCY_DOWN');
    expect(err?.message).toMatch(/3 attempts .*"cycle\.cancelled" on cycle C-9 was not recorded/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300); // 100 + 200 ms of backoff
  });
});
