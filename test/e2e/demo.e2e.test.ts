/**
 * `npm run demo -- --auto` as a real process: it runs one whole cycle unattended (approvals clicked through
 * the signed Slack path and the Teams invoke path), exits 0 once the cycle is COMPLETED, and leaves nothing
 * running: no process it started, nothing listening on the ports it printed, no data folder.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { expect, it, inject } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..');

/** Every process under `pid` now (from /proc: pid → parent pid). */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) {
      if (pp !== p || out.includes(child)) continue;
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

it('npm run demo -- --auto runs a whole cycle to COMPLETED, exits 0 and leaves nothing running', async () => {
  const child = spawn('npm', ['run', '--silent', 'demo', '--', '--auto', '--endpoints', '40'], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TEMPORAL_CLI: inject('temporalCliPath'), LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const seen = new Set<number>();
  const sampler = setInterval(() => descendants(child.pid!).forEach((p) => seen.add(p)), 250);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearInterval(sampler);

  expect(code, out).toBe(0);
  // The whole cycle, with the approvals through the real request paths.
  expect(out).toMatch(/Slack: Approve clicked by UDEMOAPPROVER \(signed request, HTTP 200\)/);
  expect(out).toMatch(/Teams: Approve clicked by 29:demo-approver \(Action\.Execute invoke, HTTP 200\)/);
  for (const stage of ['ASSESS', 'TEST', 'AWAIT_APPROVAL', 'DEPLOYING']) expect(out).toContain(stage);
  expect(out).toMatch(/Cycle PC-\S+: COMPLETED/);
  expect(out).toMatch(/ServiceNow change CHG\d+: state 3/);
  expect(out).toMatch(/E-mail to change-managers@patchops\.demo/);

  // Nothing left: no process it started, nothing on the ports it printed, no data folder.
  expect(seen.size).toBeGreaterThan(2); // the node process, the Temporal dev server, …
  await new Promise((r) => setTimeout(r, 500));
  expect([...seen].filter(alive)).toEqual([]);
  const ports = [...out.matchAll(/http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
  expect(ports.length).toBeGreaterThan(2);
  for (const port of new Set(ports)) expect(await listening(port), `port ${port}`).toBe(false);
  const dataDir = /data folder (\S+)/.exec(out)![1]!;
  expect(fs.existsSync(dataDir)).toBe(false);
}, 600_000);
