/**
 * Agent benchmark: the bundled agent (the single executable `npm run package:agent` makes, built afresh into a
 * temporary folder) against the real gateway and database, with its real apt backend working on a throwaway root
 * and a local signed apt repository (test/helpers/apt-repo.ts). Samples the agent process's resident memory
 * (/proc/<pid>/status VmRSS) and CPU time (/proc/<pid>/stat: its own utime+stime, and apt's and dpkg's, which it
 * waits for, as cutime+cstime) while it idles in the long poll, during a scan job and during an install job.
 *
 *   npm run bench:agent              (DATABASE_URL: a fresh database is made beside it and dropped; else embedded PGlite)
 *   BENCH_IDLE_SECONDS=60            how long to sample the idle agent (default 60)
 *   BENCH_AGENT=cjs                  measure the plain bundle under this Node instead of the single executable
 *
 * Target: idle RSS < 80 MB, idle CPU ≈ 0 (under 0.5 % of one core). Exits 1 when missed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { aptInstallInto, buildAptTestRepo } from '../test/helpers/apt-repo';
import { createTestDatabase } from '../test/helpers/db';
import { addEnrollSecret } from '../src/db/agent-enroll-secrets';
import { agentJobs, endpoints, softwareInventory } from '../src/db/schema/index';
import { SecretBox } from '../src/db/secret-box';
import { createLogger } from '../src/logging';
import { createAgentGateway } from '../src/server/agent-gateway';
import { buildServer } from '../src/server/app';
import { freePort } from '../src/temporal/dev-server';

const idleSeconds = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const form = process.env.BENCH_AGENT === 'cjs' ? 'cjs' : 'exe';
const root = path.resolve(import.meta.dirname, '..');
const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const SECRET = `bench-enrol-secret-${randomBytes(8).toString('hex')}`;

interface Sample {
  rssKb: number;
  selfTicks: number;
  childTicks: number;
}

async function sample(pid: number): Promise<Sample> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  // Fields after "(comm)": state is field 3, so utime (14), stime (15), cutime (16), cstime (17) are at 11..14.
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rssKb, selfTicks: Number(f[11]) + Number(f[12]), childTicks: Number(f[13]) + Number(f[14]) };
}

interface Phase {
  name: string;
  seconds: number;
  rssStartMb: number;
  rssPeakMb: number;
  rssEndMb: number;
  cpuSelfSeconds: number;
  cpuChildrenSeconds: number;
}

/** Samples every 100 ms until `done()` says so (or for `seconds`), and sums up the phase. */
async function measure(name: string, pid: number, done: (elapsedMs: number) => Promise<boolean>): Promise<Phase> {
  const t0 = Date.now();
  const first = await sample(pid);
  let peak = first.rssKb;
  let last = first;
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    last = await sample(pid);
    peak = Math.max(peak, last.rssKb);
    if (await done(Date.now() - t0)) break;
  }
  const mb = (kb: number) => kb / 1024;
  return {
    name,
    seconds: (Date.now() - t0) / 1000,
    rssStartMb: mb(first.rssKb),
    rssPeakMb: mb(peak),
    rssEndMb: mb(last.rssKb),
    cpuSelfSeconds: (last.selfTicks - first.selfTicks) / TICK,
    cpuChildrenSeconds: (last.childTicks - first.childTicks) / TICK,
  };
}

async function main() {
  // The agent as shipped, built from the current sources.
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-bench-agent-'));
  execFileSync(
    process.execPath,
    [path.join(root, 'scripts/package-agent.mjs'), '--out', out, '--skip-deb', '--skip-rpm'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const command =
    form === 'exe' ? [path.join(out, 'patchops-agent')] : [process.execPath, path.join(out, 'patchops-agent.cjs')];

  // A database of its own for the run (dropped after): the gateway's manifest key is sealed with this run's key.
  const database = await createTestDatabase();
  await addEnrollSecret(database.db, { name: `bench-${randomBytes(3).toString('hex')}`, secret: SECRET });
  const logger = createLogger('warn', 'bench');
  const gateway = createAgentGateway({
    database,
    secretBox: SecretBox.ephemeral(),
    logger,
    leaseSeconds: 600,
    refreshMs: 100,
  });
  const app = await buildServer({ logger, health: [], routes: [gateway.routes] });
  const port = await freePort();
  await app.listen({ host: '127.0.0.1', port });

  // A throwaway dpkg/apt root with patchops-demo 1.0 installed; 2.0 waits in the local signed repository.
  const repo = await buildAptTestRepo();
  aptInstallInto(repo.root, `${repo.packageName}=1.0`);
  const stateDir = path.join(out, 'state');
  const machineId = `bench-agent-${randomBytes(4).toString('hex')}`;
  const [file, ...pre] = command as [string, ...string[]];
  const child = spawn(
    file,
    [
      ...pre,
      '--server',
      `http://127.0.0.1:${port}`,
      '--enroll-secret',
      SECRET,
      '--state-dir',
      stateDir,
      '--apt-root',
      repo.root,
      '--machine-id',
      machineId,
      '--hostname',
      'bench-agent',
      '--wait',
      '30',
      '--no-reboot',
    ],
    {
      env: { PATH: process.env.PATH, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let log = '';
  child.stdout.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-20_000)));
  child.stderr.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  const pid = child.pid!;
  const until = async (what: string, fn: () => Promise<boolean>, timeoutMs = 120_000) => {
    const end = Date.now() + timeoutMs;
    while (!(await fn())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
    await app.close();
    await database.close();
    await repo.cleanup();
    await fs.rm(out, { recursive: true, force: true });
  };

  try {
    let endpointId = '';
    await until('the agent to enrol', async () => {
      const [ep] = await database.db.select().from(endpoints).where(eq(endpoints.machineId, machineId));
      endpointId = ep?.id ?? '';
      return Boolean(ep);
    });
    await until(
      'its first inventory',
      async () =>
        (await database.db.select().from(softwareInventory).where(eq(softwareInventory.endpointId, endpointId)))
          .length > 0,
    );
    await new Promise((r) => setTimeout(r, 3000)); // start-up done, into the long poll
    const startup = await sample(pid);

    const phases: Phase[] = [];
    phases.push(
      await measure(`idle (long poll, wait=30 s), ${idleSeconds} s`, pid, async (ms) => ms >= idleSeconds * 1000),
    );

    const job = async (kind: 'scan' | 'install', payload: Record<string, unknown>) => {
      const id = `bench-${kind}-${randomBytes(4).toString('hex')}`;
      await database.db.insert(agentJobs).values({ id, endpointId, kind, payload });
      gateway.wake([endpointId]);
      const phase = await measure(
        kind === 'scan'
          ? 'scan job (apt-get update + simulated dist-upgrade)'
          : `install job (apt-get install ${repo.packageName}=2.0)`,
        pid,
        async () => {
          const [j] = await database.db.select().from(agentJobs).where(eq(agentJobs.id, id));
          if (j?.state === 'failed') throw new Error(`the ${kind} job failed: ${JSON.stringify(j.result)}\n${log}`);
          return j?.state === 'succeeded';
        },
      );
      phases.push(phase);
    };
    await job('scan', { patchIds: [] });
    await job('install', {
      patches: [
        {
          patchId: `apt:${repo.packageName}:2.0`,
          packages: [{ manager: 'apt', name: repo.packageName, version: '2.0' }],
        },
      ],
      reboot: { behaviour: 'never' },
    });
    phases.push(await measure('idle again after the jobs, 10 s', pid, async (ms) => ms >= 10_000));

    const cpus = os.cpus();
    console.log(
      `agent benchmark: ${form === 'exe' ? 'single executable' : `bundle under Node ${process.version}`} (${((await fs.stat(command.at(-1)!)).size / 1048576).toFixed(1)} MiB), ` +
        `${process.env.DATABASE_URL ? 'PostgreSQL' : 'embedded PGlite'} gateway on loopback, apt backend on a throwaway root`,
    );
    console.log(
      `machine: ${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB memory, ${os.type()} ${os.release()}, Node ${process.version}`,
    );
    console.log(
      `after start-up (enrolled, first inventory sent): RSS ${(startup.rssKb / 1024).toFixed(1)} MB, CPU ${(startup.selfTicks / TICK).toFixed(2)} s`,
    );
    console.log(
      'phase                                                     secs   RSS start  RSS peak   RSS end   agent CPU  (% core)   apt/dpkg CPU',
    );
    for (const p of phases) {
      console.log(
        `${p.name.padEnd(56)} ${p.seconds.toFixed(1).padStart(6)} ${p.rssStartMb.toFixed(1).padStart(8)} MB ${p.rssPeakMb.toFixed(1).padStart(6)} MB ${p.rssEndMb.toFixed(1).padStart(6)} MB ` +
          `${p.cpuSelfSeconds.toFixed(2).padStart(8)} s ${((p.cpuSelfSeconds / p.seconds) * 100).toFixed(2).padStart(7)} %   ${p.cpuChildrenSeconds.toFixed(2).padStart(8)} s`,
      );
    }
    const idle = phases[0]!;
    const ok = idle.rssPeakMb < 80 && idle.cpuSelfSeconds / idle.seconds < 0.005;
    console.log(
      ok
        ? 'target met: idle RSS < 80 MB and idle CPU ≈ 0 (< 0.5 % of one core)'
        : 'target NOT met: idle RSS < 80 MB and idle CPU < 0.5 % of one core',
    );
    await stop();
    process.exit(ok ? 0 : 1);
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(2);
});
