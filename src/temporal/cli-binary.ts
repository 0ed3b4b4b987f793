import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { CodedError, ErrorCode } from '../domain/errors';

/** v1.5.1 is the newest CLI tag without a `replace` directive in go.mod, which `go install` refuses. */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

export interface ObtainOptions {
  /** TEMPORAL_CLI, when set. */
  explicitPath?: string;
  /** Cache folder outside the clone; the build goes to `<cacheDir>/bin/temporal`. */
  cacheDir: string;
  /** Progress sink: a line of text each time something changes (the caller decides how to show it). */
  onProgress?: (message: string) => void;
  env?: NodeJS.ProcessEnv;
  /** The go binary; undefined = `go` on PATH or /usr/local/go/bin/go. */
  goPath?: string;
  /** Try the SDK's own download as the last route (needs the internet). Default true. */
  allowDownload?: boolean;
}

export interface ObtainedCli {
  path: string;
  route: 'TEMPORAL_CLI' | 'PATH' | 'cache' | 'go install' | 'sdk download';
}

/**
 * Finds or builds the Temporal CLI, in this order: TEMPORAL_CLI, `temporal` on PATH, the cached build,
 * `go install` into the cache, the SDK's download. When none works, the error names every route tried and why
 * it failed.
 */
export async function obtainTemporalCli(options: ObtainOptions): Promise<ObtainedCli> {
  const env = options.env ?? process.env;
  const tried: string[] = [];
  const progress = options.onProgress ?? (() => undefined);

  if (options.explicitPath) {
    const why = checkExecutable(options.explicitPath);
    if (!why) return { path: options.explicitPath, route: 'TEMPORAL_CLI' };
    throw new CodedError(
      ErrorCode.TemporalCliUnavailable,
      `TEMPORAL_CLI=${options.explicitPath}: ${why}. Point it at a temporal binary, or unset it to let patchops find or build one.`,
    );
  }
  tried.push('TEMPORAL_CLI: not set');

  const onPath = findOnPath('temporal', env.PATH ?? '');
  if (onPath) return { path: onPath, route: 'PATH' };
  tried.push('PATH: no `temporal` executable on PATH');

  const binDir = path.join(options.cacheDir, 'bin');
  const cached = path.join(binDir, process.platform === 'win32' ? 'temporal.exe' : 'temporal');
  if (!checkExecutable(cached) && (await isUsableCli(cached))) return { path: cached, route: 'cache' };
  tried.push(`cache: no working binary at ${cached}`);

  // Serialise concurrent builds (npm test and npm start at once) with a lock directory.
  await fsp.mkdir(options.cacheDir, { recursive: true });
  const release = await acquireLock(path.join(options.cacheDir, 'temporal-build.lock'), progress);
  try {
    if (!checkExecutable(cached) && (await isUsableCli(cached))) return { path: cached, route: 'cache' };
    const go =
      options.goPath ??
      findOnPath('go', env.PATH ?? '') ??
      (checkExecutable('/usr/local/go/bin/go') ? undefined : '/usr/local/go/bin/go');
    if (!go) {
      tried.push('go install: Go is not installed (no `go` on PATH or in /usr/local/go/bin)');
    } else {
      const first = await goInstall(go, binDir, env, progress, false);
      if (first.ok && (await isUsableCli(cached))) return { path: cached, route: 'go install' };
      let why = first.ok ? 'the build finished but the binary does not run' : first.error;
      if (
        !first.ok &&
        /sum\.golang\.org|checksum database|verifying module|SECURITY ERROR|GOSUMDB/i.test(first.error)
      ) {
        progress(
          'the Go checksum database is unreachable; retrying with GOSUMDB=off (modules are still checked against the CLI go.sum)',
        );
        const second = await goInstall(go, binDir, env, progress, true);
        if (second.ok && (await isUsableCli(cached))) return { path: cached, route: 'go install' };
        why = second.ok ? 'the build finished but the binary does not run' : second.error;
      }
      tried.push(`go install ${TEMPORAL_CLI_MODULE}: ${lastLines(why, 6)}`);
    }

    if (options.allowDownload !== false) {
      const downloaded = await sdkDownload(options.cacheDir, progress);
      if (downloaded.ok) return { path: downloaded.path, route: 'sdk download' };
      tried.push(`sdk download: ${downloaded.error}`);
    }
  } finally {
    await release();
  }

  throw new CodedError(
    ErrorCode.TemporalCliUnavailable,
    `No Temporal CLI could be found or built. Routes tried:\n${tried.map((t) => `  - ${t}`).join('\n')}\n` +
      'Fix one of them: set TEMPORAL_CLI to a temporal binary, install Go (https://go.dev/dl) so patchops can build it, ' +
      'or set TEMPORAL_ADDRESS to use an existing Temporal server.',
  );
}

function checkExecutable(file: string): string | undefined {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    if (!fs.statSync(file).isFile()) return 'is not a file';
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'is not executable';
  }
}

async function isUsableCli(file: string): Promise<boolean> {
  const r = spawnSync(file, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 && /temporal version/i.test(r.stdout);
}

export function findOnPath(name: string, PATH: string): string | undefined {
  for (const dir of PATH.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (!checkExecutable(candidate)) return candidate;
  }
  return undefined;
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}

async function goInstall(
  go: string,
  binDir: string,
  env: NodeJS.ProcessEnv,
  progress: (m: string) => void,
  sumdbOff: boolean,
): Promise<{ ok: true } | { ok: false; error: string }> {
  await fsp.mkdir(binDir, { recursive: true });
  const started = Date.now();
  progress(`building the Temporal CLI with go install ${TEMPORAL_CLI_MODULE} (first time only; takes a few minutes)`);
  return new Promise((resolve) => {
    const child = spawn(go, ['install', TEMPORAL_CLI_MODULE], {
      env: {
        ...env,
        GOBIN: binDir,
        GOFLAGS: `${env.GOFLAGS ?? ''} -mod=mod`.trim(),
        ...(sumdbOff ? { GOSUMDB: 'off' } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let downloaded = 0;
    const tick = setInterval(() => {
      const secs = Math.round((Date.now() - started) / 1000);
      progress(
        `building the Temporal CLI: ${downloaded} modules downloaded, compiling… ${Math.floor(secs / 60)}m${String(secs % 60).padStart(2, '0')}s`,
      );
    }, 10_000);
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      output = (output + text).slice(-20_000);
      downloaded += (text.match(/go: downloading/g) ?? []).length;
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => {
      clearInterval(tick);
      resolve({ ok: false, error: err.message });
    });
    child.on('close', (code) => {
      clearInterval(tick);
      const secs = Math.round((Date.now() - started) / 1000);
      if (code === 0) {
        progress(`built the Temporal CLI in ${secs}s into ${binDir}`);
        resolve({ ok: true });
      } else resolve({ ok: false, error: output || `go install exited with ${code}` });
    });
  });
}

/** The SDK's own route: core downloads a CLI release into a folder. Needs the internet. */
async function sdkDownload(
  cacheDir: string,
  progress: (m: string) => void,
): Promise<{ ok: true; path: string } | { ok: false; error: string }> {
  const downloadDir = path.join(cacheDir, 'sdk-download');
  try {
    progress('trying the Temporal SDK download of the CLI');
    await fsp.mkdir(downloadDir, { recursive: true });
    const { TestWorkflowEnvironment } = await import('@temporalio/testing');
    const env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'cached-download', downloadDir }, ip: '127.0.0.1' },
    });
    await env.teardown();
    for (const entry of await fsp.readdir(downloadDir, { recursive: true })) {
      const file = path.join(downloadDir, String(entry));
      if (/temporal(-cli)?[^/]*$/.test(path.basename(file)) && !checkExecutable(file) && (await isUsableCli(file))) {
        return { ok: true, path: file };
      }
    }
    return { ok: false, error: 'the SDK downloaded a server but no temporal binary was found in ' + downloadDir };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split('\n')[0] ?? String(e) };
  }
}

async function acquireLock(dir: string, progress: (m: string) => void): Promise<() => Promise<void>> {
  const started = Date.now();
  let told = false;
  for (;;) {
    try {
      await fsp.mkdir(dir);
      await fsp.writeFile(path.join(dir, 'pid'), String(process.pid));
      return async () => {
        await fsp.rm(dir, { recursive: true, force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(await fsp.readFile(path.join(dir, 'pid'), 'utf8').catch(() => '0'));
      if (!owner || !isAlive(owner)) {
        // Stale lock from a process that died mid-build.
        await fsp.rm(dir, { recursive: true, force: true });
        continue;
      }
      if (!told) {
        progress(`another process (pid ${owner}) is building the Temporal CLI; waiting for it`);
        told = true;
      }
      if (Date.now() - started > 30 * 60_000) throw new Error(`timed out waiting for the build lock ${dir}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
