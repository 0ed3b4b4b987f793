import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { isAlive } from './cli-binary';

export interface DevServerOptions {
  cliPath: string;
  /** SQLite file for persistent state; undefined = in memory. */
  dbFile?: string;
  ip?: string;
  port: number;
  /** undefined = headless (no Web UI). */
  uiPort?: number;
  /** Where to write the pid file that lets the next start kill an orphan. */
  pidFile?: string;
  logFile?: string;
  startTimeoutMs?: number;
  namespace?: string;
}

export interface DevServer {
  address: string;
  uiUrl: string | undefined;
  pid: number;
  stop(): Promise<void>;
}

/** Dynamic config the product relies on: Workflow Updates (approvals) and their async variant. */
const DYNAMIC_CONFIG = [
  'frontend.enableUpdateWorkflowExecution=true',
  'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
  'frontend.workerVersioningDataAPIs=true',
];

/**
 * Starts `temporal server start-dev` bound to one address, waits until it answers gRPC, and returns a
 * handle whose stop() ends it (SIGTERM, then SIGKILL after 5 s). A pid file lets the next start end an
 * orphan left by a process that was killed hard.
 */
export async function startDevServer(o: DevServerOptions): Promise<DevServer> {
  const ip = o.ip ?? '127.0.0.1';
  if (o.pidFile) await killOrphan(o.pidFile);
  if (!(await portFree(ip, o.port))) {
    throw new Error(
      `Port ${ip}:${o.port} is taken, so the embedded Temporal server cannot start. Stop whatever uses it ` +
        '(another patchops, or a temporal dev server), set TEMPORAL_DEV_PORT to a free port, or set TEMPORAL_ADDRESS to use that server.',
    );
  }
  if (o.dbFile) await fsp.mkdir(path.dirname(o.dbFile), { recursive: true });

  const args = ['server', 'start-dev', '--ip', ip, '--port', String(o.port), '--log-level', 'warn'];
  if (o.dbFile) args.push('--db-filename', o.dbFile);
  if (o.uiPort === undefined) args.push('--headless');
  else args.push('--ui-port', String(o.uiPort), '--ui-ip', ip);
  if (o.namespace && o.namespace !== 'default') args.push('--namespace', o.namespace);
  for (const kv of DYNAMIC_CONFIG) args.push('--dynamic-config-value', kv);

  const logStream = o.logFile ? fs.createWriteStream(o.logFile, { flags: 'a' }) : undefined;
  // Its own process group: a terminal's Ctrl-C reaches the whole foreground group, and a server that went down with it
  // would fail the Temporal calls still in flight (the client retries them on a timer, after its channel has closed, and
  // that throws). patchops stops it itself, last; if patchops exits first (a second Ctrl-C, a crash), the exit hook kills it.
  const child = spawn(o.cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  let recent = '';
  const collect = (chunk: Buffer) => {
    recent = (recent + chunk.toString()).slice(-4000);
    logStream?.write(chunk);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  if (o.pidFile && child.pid) await fsp.writeFile(o.pidFile, `${child.pid}\n${o.cliPath}\n`);

  const address = `${ip}:${o.port}`;
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });

  const stop = async () => {
    await stopChild(child);
    process.off('exit', killOnExit);
    logStream?.end();
    if (o.pidFile) await fsp.rm(o.pidFile, { force: true });
  };

  const deadline = Date.now() + (o.startTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(
        `temporal server start-dev exited (${exited.code ?? exited.signal}) before it was ready:\n${recent.trim()}`,
      );
    }
    if (await answers(address)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `temporal server start-dev did not answer on ${address} within ${(o.startTimeoutMs ?? 60_000) / 1000}s:\n${recent.trim()}`,
      );
    }
    await sleep(250);
  }
  return {
    address,
    uiUrl: o.uiPort === undefined ? undefined : `http://${ip}:${o.uiPort}`,
    pid: child.pid ?? 0,
    stop,
  };
}

async function answers(address: string): Promise<boolean> {
  let conn: Connection | undefined;
  try {
    conn = await Connection.connect({ address, connectTimeout: 1000 });
    await conn.workflowService.getSystemInfo({});
    return true;
  } catch {
    return false;
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(timer);
}

async function killOrphan(pidFile: string): Promise<void> {
  const text = await fsp.readFile(pidFile, 'utf8').catch(() => undefined);
  if (!text) return;
  const [pidText, cli] = text.split('\n');
  const pid = Number(pidText);
  if (pid && isAlive(pid) && isTemporalProcess(pid, cli ?? '')) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100);
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  await fsp.rm(pidFile, { force: true });
}

function isTemporalProcess(pid: number, cli: string): boolean {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('start-dev') && (cli === '' || cmdline.includes(path.basename(cli)));
  } catch {
    // No /proc (macOS): trust the pid file only if the process still exists.
    return true;
  }
}

export function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** A port the OS says is free right now. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
