import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit, auditKeysFrom, useAuditKeys } from '../../db/audit';
import { SecretBox } from '../../db/secret-box';
import { listAudit } from '../../db/dashboard';
import { verifyPassword } from '../../server/dashboard/auth';
import { webUsers } from '../../db/schema/index';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { loggedInCli, type Cli } from '../../../test/helpers/cli-session';
import type { FastifyInstance } from 'fastify';
import { apiRoutes } from '../../api';
import { createLogger } from '../../logging';
import { buildServer } from '../../server/app';
import type { CycleService } from '../../services/cycle-service';
import { seedFleet } from '../../../test/browser/fixtures';
import { pdfContent } from '../../../test/browser/pdf-text';

const root = path.resolve(import.meta.dirname, '..', '..', '..');

/** Runs the real `patchops` command against the test's database. */
function patchops(
  args: string[],
  env: Record<string, string>,
  stdin?: string,
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(root, 'bin', 'patchops.mjs'), ...args], {
      cwd: root,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'tester', LOG_LEVEL: 'warn', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.stdin.end(stdin ?? '');
    child.on('exit', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

describe('patchops users / report / audit (through the API) (the real CLI)', () => {
  let t: TestDatabase;
  let env: Record<string, string>;
  let dir: string;
  let app: FastifyInstance;
  let admin: Cli;
  let viewer: Cli;
  beforeAll(async () => {
    // The CLI and this test write and verify the keyed audit chain under one secrets key.
    const secretsKey = 'ab'.repeat(32);
    useAuditKeys(auditKeysFrom(SecretBox.fromString(secretsKey)));
    t = await createTestDatabase();
    await seedFleet(t.db, 'c');
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-cli-'));
    env = { DATABASE_URL: t.url, SECRETS_KEY: secretsKey, PATCHOPS_DATA_DIR: dir };
    const logger = createLogger('silent');
    app = await buildServer({
      logger,
      health: [],
      routes: [
        apiRoutes({
          db: t.db,
          service: {} as CycleService,
          logger,
          auditCheckpointFile: path.join(dir, 'audit-checkpoint.json'),
        }),
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    const server = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    admin = await loggedInCli(server, t.db, { username: 'ada', role: 'admin' });
    viewer = await loggedInCli(server, t.db, { username: 'vic', role: 'viewer' });
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('adds a user from stdin, lists and removes it through the API as the logged-in admin, auditing each change', async () => {
    const add = await admin(['users', 'add', 'carol', '--role', 'approver', '--password-stdin'], 'carol-secret-pw\n');
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    const [row] = await t.db
      .select()
      .from(webUsers)
      .where(sql`${webUsers.username} = 'carol'`);
    expect(await verifyPassword('carol-secret-pw', row!.passwordHash)).toBe(true);
    expect(row!.passwordHash).not.toContain('carol-secret-pw');
    const again = await admin(['users', 'add', 'carol', '--role', 'viewer', '--password-stdin'], 'another-password');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/CONFLICT.*already exists/);
    const bad = await admin(['users', 'add', 'dave', '--role', 'root']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/admin, approver, viewer/);
    expect((await admin(['users', 'list'])).stdout).toMatch(/carol\s+approver/);
    // A viewer's login may not list, add or remove users.
    const refused = await viewer(['users', 'list']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('error [FORBIDDEN]');
    expect((await viewer(['users', 'remove', 'carol'])).stderr).toContain('error [FORBIDDEN]');
    expect((await admin(['users', 'remove', 'carol'])).code).toBe(0);
    expect((await admin(['users', 'remove', 'carol'])).stderr).toMatch(/no web user "carol"/);
    const audit = await listAudit(t.db, { subjectType: 'web_user', subjectId: 'carol' });
    expect(audit.map((a) => [a.action, a.actor])).toEqual([
      ['user.removed', 'web:ada'],
      ['user.added', 'web:ada'],
    ]);
  });

  it('users add with no login: refused once web users exist; makes the first user of an empty database directly', async () => {
    const refused = await patchops(
      ['users', 'add', 'eve', '--role', 'admin', '--password-stdin'],
      env,
      'eve-secret-pw\n',
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('not logged in: web users exist already');
    expect(refused.stderr).toContain('patchops login --server');
    expect(
      await t.db
        .select()
        .from(webUsers)
        .where(sql`${webUsers.username} = 'eve'`),
    ).toEqual([]);
    expect((await patchops(['users', 'list'], env)).stderr).toContain('not logged in');

    const empty = await createTestDatabase();
    try {
      const first = await patchops(
        ['users', 'add', 'root-admin', '--role', 'admin', '--password-stdin'],
        { ...env, DATABASE_URL: empty.url },
        'first-admin-pw\n',
      );
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      expect((await empty.db.select().from(webUsers)).map((u) => u.username)).toEqual(['root-admin']);
    } finally {
      await empty.close();
    }
  });

  it('writes a CSV report (from the server, as a viewer) to stdout and a PDF with chart images to a file', async () => {
    const csv = await viewer(['report', '--format', 'csv', '--scope', 'compliance']);
    expect(csv.code).toBe(0);
    const text = csv.stdout;
    expect(text.split('\r\n')[0]).toBe('dimension,name,endpoints,compliant,compliance_pct');
    expect(text).toContain('fleet,all,4,2,50');
    expect(text).toContain('group,c-db-servers,1,0,0');
    const sla = await viewer(['report', '--format', 'csv', '--scope', 'sla']);
    const breaches = sla.stdout.trim().split('\r\n').slice(1);
    expect(breaches.map((l) => l.split(',').slice(0, 3).join(','))).toEqual(
      expect.arrayContaining(['c-web-1,c-web-1.example.net,c-DSA-5678-1', 'c-db-1,c-db-1.example.net,c-KB5034441']),
    );
    expect(breaches).toHaveLength(2);

    const out = path.join(dir, 'report.pdf');
    const pdf = await viewer(['report', '--format', 'pdf', '--out', out]);
    expect(pdf.stderr).toContain(`report written to ${out}`);
    const content = pdfContent(await fs.readFile(out));
    expect(content.pages).toBeGreaterThanOrEqual(4);
    expect(content.images).toBeGreaterThanOrEqual(4);
    expect(content.text).toContain('patchops compliance report');
    expect(content.text).toContain('Compliance by group and OS');
    expect(content.text).toContain('c-web-servers');
    expect(content.text).toMatch(/SLA breaches \(2\)/);
    expect(content.text).toContain('CHG0031337');
    const wrong = await viewer(['report', '--scope', 'everything']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/use one of all, compliance, sla, cycles/);
  });

  it('audit verify (admin only) passes an intact chain, moves the checkpoint, and names the first tampered row', async () => {
    const refused = await viewer(['audit', 'verify']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/FORBIDDEN.*admin role/);
    await appendAudit(t.db, {
      actor: 'slack:U1',
      action: 'cycle.approved',
      subjectType: 'cycle',
      subjectId: 'c-cycle-1',
    });
    const target = await appendAudit(t.db, {
      actor: 'web:alice',
      action: 'exception.added',
      subjectType: 'exception',
      subjectId: 'EXC-9',
    });
    await appendAudit(t.db, {
      actor: 'web:alice',
      action: 'exception.removed',
      subjectType: 'exception',
      subjectId: 'EXC-9',
    });
    const ok = await admin(['audit', 'verify']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/audit chain intact: \d+ rows verified/);
    expect(ok.stdout).toMatch(/checkpoint moved to head row \d+/);

    const exported = path.join(dir, 'audit.csv');
    const exp = await admin(['audit', 'export', '--out', exported, '--action', 'exception.']);
    expect(exp.code).toBe(0);
    const csv = (await fs.readFile(exported, 'utf8')).trim().split('\r\n');
    expect(csv[0]).toBe('id,at,actor,action,subject_type,subject_id,details,prev_hash,hash');
    expect(csv.slice(1).map((l) => l.split(',')[3])).toEqual(['exception.added', 'exception.removed']);

    // Someone with superuser rights switches the trigger off and rewrites history.
    await t.db.execute(sql.raw('alter table audit_log disable trigger audit_log_no_update'));
    await t.db.execute(
      sql`update audit_log set details = '{"reason":"nothing to see"}'::jsonb where id = ${target.id}`,
    );
    await t.db.execute(sql.raw('alter table audit_log enable trigger audit_log_no_update'));
    const broken = await admin(['audit', 'verify']);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain(`audit chain BROKEN at row ${target.id}`);
    expect(broken.stderr).toMatch(/altered/);
  });
});
