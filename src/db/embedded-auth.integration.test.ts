/**
 * The embedded database refuses anyone without its password (issue #11 item 9): PGlite alone would take any user
 * name and password as superuser. Attacks run against the real wire-protocol server with real clients
 * (node-postgres, and psql where it is installed), and must be refused with nothing changed.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index';
import { createLogger } from '../logging';
import { startDatabase } from '../runtime/database';
import { freePort } from '../temporal/dev-server';
import { embeddedPassword, startEmbeddedPostgres, type EmbeddedPostgres } from './embedded';

function has(cmd: string): Promise<boolean> {
  return new Promise((resolve) => execFile('sh', ['-c', `command -v ${cmd}`], (err) => resolve(!err)));
}
const hasPsql = await has('psql');
if (!hasPsql)
  console.warn(
    'psql is not installed (Debian package postgresql-client): the libpq-client checks of the embedded database are skipped',
  );

async function connectError(url: string): Promise<(Error & { code?: string }) | undefined> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('drop table if exists precious');
    return undefined;
  } catch (e) {
    return e as Error & { code?: string };
  } finally {
    await c.end().catch(() => undefined);
  }
}

describe('the embedded database asks for its password and listens on loopback only', () => {
  let dir: string;
  let passwordFile: string;
  let embedded: EmbeddedPostgres;
  let port: number;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-embedded-'));
    passwordFile = path.join(dir, 'pglite.password');
    port = await freePort();
    embedded = await startEmbeddedPostgres({ port, passwordFile });
    const c = new pg.Client({ connectionString: embedded.url });
    await c.connect();
    await c.query("create table precious (v text); insert into precious values ('kept')");
    await c.end();
  });
  afterAll(async () => {
    await embedded?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  async function precious(): Promise<string[]> {
    const c = new pg.Client({ connectionString: embedded.url });
    await c.connect();
    try {
      return (await c.query<{ v: string }>('select v from precious')).rows.map((r) => r.v);
    } finally {
      await c.end();
    }
  }

  it('generates the password on first start into a file only its owner can read, and the URL carries it', async () => {
    const stat = await fs.stat(passwordFile);
    expect(stat.mode & 0o777).toBe(0o600);
    const password = (await fs.readFile(passwordFile, 'utf8')).trim();
    expect(password.length).toBeGreaterThanOrEqual(32);
    expect(new URL(embedded.url).password).toBe(encodeURIComponent(password));
    expect(await precious()).toEqual(['kept']);
  });

  it.each([
    {
      who: 'the right user with a wrong password',
      user: 'postgres',
      password: 'wrong-password',
      code: '28P01',
      message: /password authentication failed for user "postgres"/,
    },
    {
      who: 'the old fixed credentials postgres:postgres',
      user: 'postgres',
      password: 'postgres',
      code: '28P01',
      message: /password authentication failed/,
    },
    {
      who: 'any other user name',
      user: 'mallory',
      password: 'anything',
      code: '28000',
      message: /has one user, "postgres"/,
    },
    {
      who: 'another user with the right password',
      user: 'admin',
      password: '(right)',
      code: '28000',
      message: /has one user/,
    },
  ])('refuses $who, and nothing changes', async ({ user, password, code, message }) => {
    const u = new URL(embedded.url);
    u.username = user;
    u.password = password === '(right)' ? u.password : encodeURIComponent(password);
    const err = await connectError(u.toString());
    expect(err?.code).toBe(code);
    expect(err?.message).toMatch(message);
    expect(await precious()).toEqual(['kept']);
  });

  it('refuses a client that sends no password at all', async () => {
    const u = new URL(embedded.url);
    u.password = '';
    const err = await connectError(u.toString());
    expect(err).toBeDefined();
    expect(await precious()).toEqual(['kept']);
  });

  it.skipIf(!hasPsql)('psql (libpq) gets in with the password and is refused without it', async () => {
    const run = (password: string) =>
      new Promise<{ code: number; out: string }>((resolve) =>
        execFile(
          'psql',
          [
            '-h',
            '127.0.0.1',
            '-p',
            String(port),
            '-U',
            'postgres',
            '-d',
            'postgres',
            '-w',
            '-tA',
            '-c',
            'select v from precious',
          ],
          { env: { ...process.env, PGPASSWORD: password, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '5' } },
          (err, stdout, stderr) =>
            resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
        ),
      );
    const ok = await run((await fs.readFile(passwordFile, 'utf8')).trim());
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.out.trim()).toBe('kept');
    const wrong = await run('guess');
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(/password authentication failed for user "postgres"/);
  });

  it("is not reachable on the machine's other addresses, and refuses to listen on them", async () => {
    const external = Object.values(os.networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (external) {
      const password = encodeURIComponent((await fs.readFile(passwordFile, 'utf8')).trim());
      const err = await connectError(`postgres://postgres:${password}@${external}:${port}/postgres?sslmode=disable`);
      expect(err?.code).toBe('ECONNREFUSED');
    } else {
      console.warn('no non-loopback IPv4 address on this machine: only the refusal to listen on 0.0.0.0 is checked');
    }
    for (const host of ['0.0.0.0', '::', external ?? '192.0.2.1']) {
      await expect(startEmbeddedPostgres({ port: await freePort(), host })).rejects.toThrow(/loopback address only/);
    }
  });

  it('refuses a password file that others can read', async () => {
    const loose = path.join(dir, 'loose.password');
    await fs.writeFile(loose, 'a-password-of-enough-length\n', { mode: 0o644 });
    await fs.chmod(loose, 0o644);
    await expect(embeddedPassword(loose)).rejects.toThrow(/can be read by other users .*chmod 600/);
  });
});

describe('patchops processes and the embedded database password', () => {
  it('the runtime keeps the password in the data folder; a real CLI process reads it, and one with another password is refused', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-embedded-cli-'));
    const otherDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-embedded-other-'));
    const port = String(await freePort());
    const base = {
      PATCHOPS_EMBEDDED_PG_PORT: port,
      SECRETS_KEY: 'ef'.repeat(32),
      PATCHOPS_AUDIT_CHECKPOINT_MINUTES: '0',
    };
    // What `patchops up` does with the embedded default.
    const running = await startDatabase(loadConfig({ ...base, PATCHOPS_DATA_DIR: dataDir }), createLogger('silent'));
    try {
      expect((await fs.stat(path.join(dataDir, 'pglite.password'))).mode & 0o777).toBe(0o600);
      // `users add` with no login is one of the commands that open the database themselves (the first admin, no server needed).
      const ok = await patchops(['users', 'add', 'first-admin', '--role', 'admin'], {
        ...base,
        PATCHOPS_DATA_DIR: dataDir,
        XDG_CONFIG_HOME: dataDir,
      });
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
      expect(ok.stdout).toMatch(/web user first-admin added with the admin role/);

      await fs.writeFile(path.join(otherDir, 'pglite.password'), 'not-the-password-at-all\n', { mode: 0o600 });
      const refused = await patchops(['users', 'add', 'other-admin', '--role', 'admin'], {
        ...base,
        PATCHOPS_DATA_DIR: otherDir,
        XDG_CONFIG_HOME: otherDir,
      });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/password authentication failed for user "postgres"/);
    } finally {
      await running.stop();
      await fs.rm(dataDir, { recursive: true, force: true });
      await fs.rm(otherDir, { recursive: true, force: true });
    }
  });
});

const root = path.resolve(import.meta.dirname, '..', '..');

/** Runs the real `patchops` command. */
function patchops(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(root, 'bin', 'patchops.mjs'), ...args], {
      cwd: root,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout: out, stderr: err }));
  });
}
