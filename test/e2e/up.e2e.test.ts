import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it, inject } from 'vitest';
import { isAlive } from '../../src/temporal/cli-binary';
import { freePort } from '../../src/temporal/dev-server';

const root = path.resolve(import.meta.dirname, '..', '..');

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; ms: number }>;
}

function startUp(env: NodeJS.ProcessEnv): Promise<Started> {
  const child = spawn(process.execPath, [path.join(root, 'bin', 'patchops.mjs'), 'up'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  let signalledAt = 0;
  const origKill = child.kill.bind(child);
  child.kill = (sig?: NodeJS.Signals | number) => {
    signalledAt = Date.now();
    return origKill(sig);
  };
  const exited = new Promise<{ code: number | null; ms: number }>((resolve) =>
    child.on('exit', (code) => resolve({ code, ms: Date.now() - signalledAt })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within 120 s:\n${out}`)), 120_000);
    const poll = setInterval(() => {
      if (out.includes('patchops ready')) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve({ child, output: () => out, exited });
      }
    }, 100);
    child.on('exit', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new Error(`patchops up exited (${code}) before it was ready:\n${out}`));
    });
  });
}

describe('patchops up (what npm start runs)', () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });

  it('starts everything, answers /healthz, stops cleanly on SIGINT and finds its data again', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-up-'));
    const [port, temporalPort, uiPort, pgPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PATCHOPS_DATA_DIR: dataDir,
      PORT: String(port),
      TEMPORAL_DEV_PORT: String(temporalPort),
      TEMPORAL_UI_PORT: String(uiPort),
      PATCHOPS_EMBEDDED_PG_PORT: String(pgPort),
      TEMPORAL_CLI: inject('temporalCliPath'),
      LOG_LEVEL: 'warn',
    };

    const first = await startUp(env);
    children.push(first.child);
    expect(first.output()).toContain(`Dashboard      http://127.0.0.1:${port}/`);
    expect(first.output()).toContain(`Temporal UI    http://127.0.0.1:${uiPort}`);
    expect(first.output()).toMatch(/Slack: off: set SLACK_BOT_TOKEN/);

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const body = (await health.json()) as { dependencies: Record<string, { status: string }> };
    expect(body.dependencies.database!.status).toBe('up');
    expect(body.dependencies.temporal!.status).toBe('up');

    const list = spawnSync(inject('temporalCliPath'), ['workflow', 'list', '--address', `127.0.0.1:${temporalPort}`], { encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);

    const dbUrl = `postgres://postgres@127.0.0.1:${pgPort}/postgres`;
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    await client.query(`insert into endpoints (id, machine_id, hostname, os_family) values ('ep-keep', 'm-keep', 'keep-01', 'linux')`);
    await client.end();

    const temporalPid = Number((await fs.readFile(path.join(dataDir, 'temporal.pid'), 'utf8')).split('\n')[0]);
    expect(isAlive(temporalPid)).toBe(true);
    first.child.kill('SIGINT');
    const stopped = await first.exited;
    expect(stopped.ms).toBeLessThan(10_000);
    expect(isAlive(temporalPid)).toBe(false);

    const second = await startUp(env);
    children.push(second.child);
    const again = new pg.Client({ connectionString: dbUrl });
    await again.connect();
    const rows = await again.query('select hostname from endpoints');
    await again.end();
    expect(rows.rows).toEqual([{ hostname: 'keep-01' }]);
    second.child.kill('SIGINT');
    expect((await second.exited).ms).toBeLessThan(10_000);
  }, 300_000);
});
