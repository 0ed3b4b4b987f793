/**
 * The real `patchops up` process for end-to-end tests: an environment of its own (data folder and free
 * ports, the run's Temporal CLI) and a start that resolves on the ready line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import { freePort } from './free-port';

const root = path.resolve(import.meta.dirname, '..', '..');

export interface UpEnv {
  env: NodeJS.ProcessEnv;
  dataDir: string;
  ports: { http: number; temporal: number; ui: number; pg: number };
}

/** Embedded defaults in a fresh data folder on free ports, plus `extra` variables. */
export async function embeddedUpEnv(extra: NodeJS.ProcessEnv = {}, dataDirPrefix = 'patchops-up-'): Promise<UpEnv> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), dataDirPrefix));
  const ports = { http: await freePort(), temporal: await freePort(), ui: await freePort(), pg: await freePort() };
  return {
    dataDir,
    ports,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PATCHOPS_DATA_DIR: dataDir,
      PORT: String(ports.http),
      TEMPORAL_DEV_PORT: String(ports.temporal),
      TEMPORAL_UI_PORT: String(ports.ui),
      PATCHOPS_EMBEDDED_PG_PORT: String(ports.pg),
      TEMPORAL_CLI: inject('temporalCliPath'),
      LOG_LEVEL: 'warn',
      ...extra,
    },
  };
}

export interface UpProcess {
  child: ChildProcess;
  output(): string;
  /** The exit code, and how long after the last kill() it came. */
  exited: Promise<{ code: number | null; ms: number }>;
}

/**
 * Spawns `patchops up` (or `server` / `worker`) and resolves once it prints its ready line (rejects if it exits
 * first or takes longer than `timeoutMs`, default 120 s).
 */
export function startPatchopsUp(
  env: NodeJS.ProcessEnv,
  command: 'up' | 'server' | 'worker' = 'up',
  timeoutMs = 120_000,
): Promise<UpProcess> {
  const child = spawn(process.execPath, [path.join(root, 'bin', 'patchops.mjs'), command], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  let signalledAt = 0;
  const kill = child.kill.bind(child);
  child.kill = (signal?: NodeJS.Signals | number) => {
    signalledAt = Date.now();
    return kill(signal);
  };
  const exited = new Promise<{ code: number | null; ms: number }>((resolve) =>
    child.on('exit', (code) => resolve({ code, ms: Date.now() - signalledAt })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`patchops ${command}: no ready line within ${timeoutMs / 1000} s:\n${out}`)),
      timeoutMs,
    );
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
      reject(new Error(`patchops ${command} exited (${code}) before it was ready:\n${out}`));
    });
  });
}
