/**
 * `npm run demo -- --auto` as a real process: it runs one whole cycle unattended (approvals clicked through
 * the signed Slack path and the Teams invoke path with a Bot Framework JWT), exits 0 once the cycle is COMPLETED, and leaves nothing
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

/** Spawns the demo and samples every process under it until it exits. */
function startDemo(command: string, args: string[]) {
  const child = spawn(command, args, {
    cwd: root,
    // A process group of its own, as a terminal's foreground job: Ctrl-C signals the whole group.
    detached: true,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TEMPORAL_CLI: inject('temporalCliPath'),
      LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const seen = new Map<number, string>(); // pid → command line
  const sampler = setInterval(() => {
    // Read again every time: a process sampled between its fork and its exec still shows its parent's command line.
    // An empty one is kept only when nothing better was read: a process that has exited and not been reaped yet
    // (a zombie) shows none, which must not hide what it was.
    for (const p of descendants(child.pid!)) {
      try {
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
        if (cmd || !seen.has(p)) seen.set(p, cmd);
      } catch {
        // gone meanwhile
      }
    }
  }, 250);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (c) => {
      clearInterval(sampler);
      resolve(c);
    }),
  );
  return { child, output: () => out, seen, exited };
}

/** Nothing left: no process it started, nothing on the ports it printed, no data folder. */
async function expectNothingLeft(out: string, seen: Map<number, string>): Promise<void> {
  expect([...seen.values()].some((cmd) => cmd.includes('server start-dev'))).toBe(true); // the Temporal dev server was among them
  await new Promise((r) => setTimeout(r, 500));
  expect([...seen].filter(([pid]) => alive(pid))).toEqual([]);
  const ports = [...out.matchAll(/http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
  expect(ports.length).toBeGreaterThan(2);
  for (const port of new Set(ports)) expect(await listening(port), `port ${port}`).toBe(false);
  const dataDir = /data folder (\S+)/.exec(out)![1]!;
  expect(fs.existsSync(dataDir)).toBe(false);
}

it('Ctrl-C during the cycle stops everything the demo started', async () => {
  const demo = startDemo(process.execPath, [
    path.join(root, 'bin', 'patchops.mjs'),
    'demo',
    '--auto',
    '--endpoints',
    '12',
  ]);
  const end = Date.now() + 240_000;
  while (!/cycle PC-\S+ started/.test(demo.output()) && demo.child.exitCode === null && Date.now() < end)
    await new Promise((r) => setTimeout(r, 200));
  expect(demo.output()).toMatch(/cycle PC-\S+ started/);
  // The local page is up while the demo runs.
  const pageUrl = /Demo page {4}(\S+)/.exec(demo.output())![1]!;
  expect(await (await fetch(pageUrl)).text()).toContain('Approval cards');
  process.kill(-demo.child.pid!, 'SIGINT'); // what Ctrl-C does: the whole foreground process group
  const t0 = Date.now();
  const code = await demo.exited;
  expect(Date.now() - t0, demo.output()).toBeLessThan(15_000);
  expect(code, demo.output()).toBe(130);
  expect(demo.output()).toContain('patchops demo failed: interrupted');
  await expectNothingLeft(demo.output(), demo.seen);
}, 300_000);

it('npm run demo -- --auto runs a whole cycle to COMPLETED, exits 0 and leaves nothing running', async () => {
  const demo = startDemo('npm', ['run', '--silent', 'demo', '--', '--auto', '--endpoints', '40']);
  const code = await demo.exited;
  const out = demo.output();
  expect(code, out).toBe(0);
  // The whole cycle, with the approvals through the real request paths.
  expect(out).toMatch(/Slack: Approve clicked by UDEMOAPPROVER \(signed request, HTTP 200\)/);
  // Teams: the invoke carried a Bot Framework JWT that the bot checked against the local issuer's OpenID metadata.
  expect(out).toMatch(
    /Teams: Approve clicked by 29:demo-approver \(Action\.Execute invoke with a signed Bot Framework token, HTTP 200\)/,
  );
  // Every call the bot made to the Teams connector carried the app token it got from the login endpoint.
  const teamsCalls = /Teams: (\d+) connector calls, (\d+) with the bot's app token/.exec(out);
  expect(teamsCalls, out).not.toBeNull();
  expect(Number(teamsCalls![1])).toBeGreaterThan(0);
  expect(teamsCalls![2]).toBe(teamsCalls![1]);
  // Progress is sampled, so a fast stage (ASSESS) may pass between two samples; these last long enough to show.
  for (const stage of ['TEST ', 'AWAIT_APPROVAL ', 'DEPLOYING ', 'COMPLETED ']) expect(out).toContain(stage);
  expect(out).toMatch(/test: done 9\/9/);
  expect(out).toMatch(/COMPLETED \(31 endpoint\(s\) patched, 0 failed; verified 31 of 31 endpoint\(s\)\)/);
  expect(out).toMatch(/Cycle PC-\S+: COMPLETED/);
  expect(out).toMatch(/ServiceNow change CHG\d+: state 3, close code successful/);
  expect(out).toMatch(/E-mail to change-managers@patchops\.demo: "\[patchops\] Cycle completed/);
  await expectNothingLeft(out, demo.seen);
}, 600_000);
