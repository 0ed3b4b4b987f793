import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it, inject } from 'vitest';
import { isAlive } from '../../src/temporal/cli-binary';
import { freePort } from '../helpers/free-port';
import { embeddedUpEnv, startPatchopsUp } from '../helpers/up-process';

describe('patchops up (what npm start runs)', () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });

  it('starts everything, answers /healthz, stops cleanly on SIGINT and finds its data again', async () => {
    const { env, dataDir, ports } = await embeddedUpEnv();
    const { http: port, temporal: temporalPort, ui: uiPort, pg: pgPort } = ports;

    const first = await startPatchopsUp(env);
    children.push(first.child);
    expect(first.output()).toContain(`Dashboard      http://127.0.0.1:${port}/`);
    expect(first.output()).toContain(`Temporal UI    http://127.0.0.1:${uiPort}`);
    expect(first.output()).toMatch(/Slack: off: set SLACK_BOT_TOKEN/);

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const body = (await health.json()) as { dependencies: Record<string, { status: string }> };
    expect(body.dependencies.database!.status).toBe('up');
    expect(body.dependencies.temporal!.status).toBe('up');

    const list = spawnSync(inject('temporalCliPath'), ['workflow', 'list', '--address', `127.0.0.1:${temporalPort}`], {
      encoding: 'utf8',
    });
    expect(list.status, list.stderr).toBe(0);

    // The embedded database takes only the password `up` generated into the data folder (mode 0600).
    expect((await fs.stat(path.join(dataDir, 'pglite.password'))).mode & 0o777).toBe(0o600);
    const password = (await fs.readFile(path.join(dataDir, 'pglite.password'), 'utf8')).trim();
    const intruder = new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${pgPort}/postgres` });
    intruder.on('error', () => undefined);
    await expect(intruder.connect()).rejects.toThrow(/password authentication failed for user "postgres"/);
    const dbUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${pgPort}/postgres`;
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    await client.query(
      `insert into endpoints (id, machine_id, hostname, os_family) values ('ep-keep', 'm-keep', 'keep-01', 'linux')`,
    );
    await client.end();

    const temporalPid = Number((await fs.readFile(path.join(dataDir, 'temporal.pid'), 'utf8')).split('\n')[0]);
    expect(isAlive(temporalPid)).toBe(true);
    first.child.kill('SIGINT');
    const stopped = await first.exited;
    expect(stopped.ms).toBeLessThan(10_000);
    expect(isAlive(temporalPid)).toBe(false);

    // The second start also serves Prometheus metrics: ours and the Temporal SDK's exporter.
    const metricsPort = await freePort();
    const sdkMetricsPort = await freePort();
    const second = await startPatchopsUp({
      ...env,
      METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
      TEMPORAL_METRICS_ADDRESS: `127.0.0.1:${sdkMetricsPort}`,
    });
    children.push(second.child);
    await fetch(`http://127.0.0.1:${port}/healthz`);
    const ours = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(ours).toContain('patchops_http_requests_total{route="/healthz",method="GET",status="200"}');
    expect(ours).toMatch(/process_open_fds \d+/);
    const sdk = await fetch(`http://127.0.0.1:${sdkMetricsPort}/metrics`);
    expect(sdk.status).toBe(200);
    expect(await sdk.text()).toMatch(/^temporal_\w+/m);
    const again = new pg.Client({ connectionString: dbUrl });
    await again.connect();
    const rows = await again.query('select hostname from endpoints');
    await again.end();
    expect(rows.rows).toEqual([{ hostname: 'keep-01' }]);
    second.child.kill('SIGINT');
    expect((await second.exited).ms).toBeLessThan(10_000);
  }, 300_000);
});
