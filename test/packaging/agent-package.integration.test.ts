/**
 * The installable agent, as shipped: `npm run package:agent` (scripts/package-agent.mjs) builds the bundle, the
 * single executable, the .deb and the .rpm into a temporary folder; the packages are installed for real into
 * throwaway roots (dpkg --root, rpm --root), never into the host's own package database; and the executable is
 * attacked the way a hostile network would: a plain-http server without --insecure-http, a download that never ends
 * or is bigger than the signed manifest says.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentJob, JobResult, ManifestBody } from '../../src/shared/agent-protocol';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..', '..');
const has = (tool: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const onLinux = process.platform === 'linux';
const missing = ['dpkg-deb', 'dpkg', 'rpmbuild', 'rpm'].filter((t) => !onLinux || !has(t));
for (const t of missing)
  console.warn(`agent packaging test: ${t} is not installed, its part is skipped (apt-get install -y dpkg-dev rpm)`);
if (!onLinux) console.warn('agent packaging test: Linux packages are built and installed on Linux only; skipped');

let out: string;
let version: string;
const debArch = process.arch === 'arm64' ? 'arm64' : 'amd64';
const rpmArch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
const exe = () => path.join(out, 'patchops-agent');

beforeAll(async () => {
  out = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-package-'));
  const r = await run(process.execPath, [path.join(root, 'scripts/package-agent.mjs'), '--out', out], {
    cwd: root,
    maxBuffer: 16 * 1024 * 1024,
  });
  expect(r.stdout).toContain('package:agent: done');
  version = (await run(exe(), ['--version'])).stdout.trim();
}, 600_000);
afterAll(async () => {
  if (out) await fs.rm(out, { recursive: true, force: true });
});

describe('the bundled agent', () => {
  it('carries the agent and the wire contract, and nothing of the server, database or workflows', async () => {
    const modules = JSON.parse(await fs.readFile(path.join(out, 'modules.json'), 'utf8')) as string[];
    expect(modules).toContain('src/agent/agent.ts');
    expect(modules).toContain('src/shared/agent-protocol.ts');
    const ours = modules.filter((m) => m.startsWith('src/'));
    expect(ours.filter((m) => !/^src\/(agent|shared)\//.test(m))).toEqual([]);
    const forbidden =
      /^(src\/(server|db|workflows|activities)\/|node_modules\/(@temporalio|drizzle-orm|drizzle-kit|fastify|@fastify|pg|pg-[^/]+|pglite|@electric-sql)\/)/;
    expect(modules.filter((m) => forbidden.test(m))).toEqual([]);
  });

  it('is one executable that runs alone: no node, no node_modules, no sources beside it', async () => {
    const alone = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-alone-'));
    try {
      await fs.copyFile(exe(), path.join(alone, 'patchops-agent'));
      const env = { PATH: '/nonexistent' };
      const v = await run(path.join(alone, 'patchops-agent'), ['--version'], { cwd: alone, env });
      expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
      const help = await run(path.join(alone, 'patchops-agent'), ['--help'], { cwd: alone, env });
      expect(help.stdout).toContain('--insecure-http');
      expect(help.stdout).toContain('--server <url>');
      // The plain bundle is the same agent for any Node.js 20 (the portable macOS / Windows form).
      expect(
        (await run(process.execPath, [path.join(out, 'portable', 'patchops-agent.cjs'), '--version'])).stdout.trim(),
      ).toBe(version);
      for (const f of ['windows-update.ps1', 'com.patchops.agent.plist', 'install-service.ps1'])
        await fs.access(path.join(out, 'portable', f));
    } finally {
      await fs.rm(alone, { recursive: true, force: true });
    }
  });
});

async function mode(p: string): Promise<number> {
  return (await fs.stat(p)).mode & 0o7777;
}

describe.skipIf(!onLinux || missing.includes('dpkg-deb') || missing.includes('dpkg'))('the .deb', () => {
  it('installs into a throwaway root (files, conffile, unit, a working agent), leaves the host alone, and purges clean', async () => {
    const deb = path.join(out, `patchops-agent_${version}_${debArch}.deb`);
    const info = (await run('dpkg-deb', ['--field', deb, 'Package', 'Version', 'Architecture', 'Depends'])).stdout;
    expect(info).toContain(`Version: ${version}`);
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-deb-root-'));
    const hostStatus = await fs.readFile('/var/lib/dpkg/status').catch(() => Buffer.alloc(0));
    const hostStateBefore = await fs.access('/var/lib/patchops-agent').then(
      () => true,
      () => false,
    );
    try {
      for (const d of ['var/lib/dpkg/info', 'var/lib/dpkg/updates'])
        await fs.mkdir(path.join(tmp, d), { recursive: true });
      await fs.writeFile(path.join(tmp, 'var/lib/dpkg/status'), '');
      // --force-script-chrootless: the maintainer scripts run on the host with DPKG_ROOT=<root> (the root has no
      // shell to chroot into); --force-depends: the empty root has no libc6 registered.
      const dpkg = (...a: string[]) =>
        run('dpkg', [
          `--root=${tmp}`,
          `--log=${path.join(tmp, 'dpkg.log')}`,
          '--force-script-chrootless',
          '--force-depends',
          ...a,
        ]);
      const installed = await dpkg('-i', deb);
      expect(installed.stdout).toContain('Setting up patchops-agent');

      const q = await run('dpkg-query', [
        `--admindir=${tmp}/var/lib/dpkg`,
        '-W',
        '-f=${Status} ${Version}\n${Conffiles}\n',
        'patchops-agent',
      ]);
      expect(q.stdout).toContain(`install ok installed ${version}`);
      expect(q.stdout).toMatch(/^ \/etc\/patchops\/agent\.env [0-9a-f]{32}$/m);

      const bin = path.join(tmp, 'usr/lib/patchops-agent/patchops-agent');
      expect(await mode(bin)).toBe(0o755);
      expect((await run(bin, ['--version'], { env: { PATH: '/nonexistent' } })).stdout.trim()).toBe(version);
      expect(await fs.readlink(path.join(tmp, 'usr/bin/patchops-agent'))).toBe('../lib/patchops-agent/patchops-agent');
      expect((await run(path.join(tmp, 'usr/bin/patchops-agent'), ['--help'])).stdout).toContain('--state-dir');

      const unit = await fs.readFile(path.join(tmp, 'lib/systemd/system/patchops-agent.service'), 'utf8');
      const execStart = /^ExecStart=(\S+)/m.exec(unit)?.[1];
      expect(execStart).toBe('/usr/lib/patchops-agent/patchops-agent');
      await fs.access(path.join(tmp, execStart!));
      expect(unit).toMatch(/^EnvironmentFile=\/etc\/patchops\/agent\.env$/m);
      if (has('systemd-analyze')) {
        // systemd's own check of the unit (unknown keys, bad values, a missing program), with its paths in the root.
        const copy = path.join(tmp, 'verify', 'patchops-agent.service');
        await fs.mkdir(path.dirname(copy));
        await fs.writeFile(
          copy,
          unit
            .replaceAll('/usr/lib/patchops-agent/', `${tmp}/usr/lib/patchops-agent/`)
            .replaceAll('/etc/patchops/', `${tmp}/etc/patchops/`),
        );
        const verified = await run('systemd-analyze', ['verify', copy]);
        expect(verified.stderr).toBe('');
      } else
        console.warn(
          'agent packaging test: systemd-analyze is not installed, the unit file is not checked by systemd (apt-get install systemd)',
        );
      await fs.access(path.join(tmp, 'etc/patchops/agent.env'));
      expect(await mode(path.join(tmp, 'etc/patchops/agent.env'))).toBe(0o600);
      // postinst made the state directory inside the root (DPKG_ROOT), traversable only, and touched nothing outside.
      expect(await mode(path.join(tmp, 'var/lib/patchops-agent'))).toBe(0o711);
      expect(await fs.readFile('/var/lib/dpkg/status').catch(() => Buffer.alloc(0))).toEqual(hostStatus);
      if (!hostStateBefore) await expect(fs.access('/var/lib/patchops-agent')).rejects.toThrow();

      // The settings file survives a remove (conffile), goes with a purge, and so does the identity.
      await fs.writeFile(path.join(tmp, 'var/lib/patchops-agent/state.json'), '{}');
      await dpkg('-r', 'patchops-agent');
      await fs.access(path.join(tmp, 'etc/patchops/agent.env'));
      await expect(fs.access(bin)).rejects.toThrow();
      await dpkg('-P', 'patchops-agent');
      await expect(fs.access(path.join(tmp, 'etc/patchops/agent.env'))).rejects.toThrow();
      await expect(fs.access(path.join(tmp, 'var/lib/patchops-agent'))).rejects.toThrow();
      await expect(fs.access(path.join(tmp, 'lib/systemd/system/patchops-agent.service'))).rejects.toThrow();
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });
});

/** Copies a program and the shared libraries it needs into `rootDir`, so a chroot there can run it. */
async function copyWithLibs(program: string, rootDir: string, as: string): Promise<void> {
  const libs = (await run('ldd', [program])).stdout
    .split('\n')
    .map((l) => /(\/\S+)\s+\(0x/.exec(l)?.[1])
    .filter((l): l is string => Boolean(l));
  for (const lib of libs) {
    await fs.mkdir(path.join(rootDir, path.dirname(lib)), { recursive: true });
    await fs.copyFile(lib, path.join(rootDir, lib));
  }
  await fs.mkdir(path.join(rootDir, path.dirname(as)), { recursive: true });
  await fs.copyFile(program, path.join(rootDir, as));
}

describe.skipIf(!onLinux || missing.includes('rpmbuild') || missing.includes('rpm'))('the .rpm', () => {
  it('installs into a throwaway root with its scriptlets run in a chroot there, and erases clean', async () => {
    const rpmFile = path.join(out, `patchops-agent-${version}-1.${rpmArch}.rpm`);
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-rpm-root-'));
    try {
      // rpm runs scriptlets chrooted into the root: give it a shell (dash and its libraries) and nothing else.
      await copyWithLibs('/bin/dash', tmp, '/bin/sh');
      const rpm = (...a: string[]) => run('rpm', ['--root', tmp, ...a], { env: { ...process.env, LC_ALL: 'C' } });
      await rpm('--initdb');
      // --nodeps: the throwaway root has no glibc package registered.
      const installed = await rpm('-i', '--nodeps', rpmFile);
      expect(installed.stdout).toContain('set PATCHOPS_SERVER and PATCHOPS_ENROLL_SECRET in /etc/patchops/agent.env');
      expect(installed.stderr).not.toMatch(/scriptlet failed/);
      expect((await rpm('-q', 'patchops-agent')).stdout.trim()).toBe(`patchops-agent-${version}-1.${rpmArch}`);
      expect((await rpm('-qc', 'patchops-agent')).stdout.trim()).toBe('/etc/patchops/agent.env');
      const bin = path.join(tmp, 'usr/lib/patchops-agent/patchops-agent');
      expect((await run(path.join(tmp, 'usr/bin/patchops-agent'), ['--version'])).stdout.trim()).toBe(version);
      expect(await mode(bin)).toBe(0o755);
      expect(await mode(path.join(tmp, 'etc/patchops/agent.env'))).toBe(0o600);
      expect(await mode(path.join(tmp, 'var/lib/patchops-agent'))).toBe(0o711);
      expect(await fs.readFile(path.join(tmp, 'lib/systemd/system/patchops-agent.service'), 'utf8')).toContain(
        'ExecStart=/usr/lib/patchops-agent/patchops-agent ',
      );
      await rpm('-e', 'patchops-agent');
      await expect(fs.access(bin)).rejects.toThrow();
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });
});

// ------------------------------------------------------------------------------------------ attacks on the executable

interface Spawned {
  code: Promise<number | null>;
  output: () => string;
  kill: () => void;
}
function startAgent(args: string[]): Spawned {
  const child = spawn(exe(), args, {
    env: { PATH: process.env.PATH, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr.on('data', (c: Buffer) => (text += c.toString()));
  return {
    code: new Promise((r) => child.on('exit', (c) => r(c))),
    output: () => text,
    kill: () => child.kill('SIGKILL'),
  };
}

async function listen(server: http.Server, host: string): Promise<number> {
  await new Promise<void>((r) => server.listen(0, host, r));
  return (server.address() as AddressInfo).port;
}

describe('a plain-http server', () => {
  const lanAddress = Object.values(os.networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  if (!lanAddress)
    console.warn(
      'agent packaging test: this machine has no non-loopback IPv4 address; the plain-http refusal is tested on a name instead',
    );

  it('is refused without --insecure-http before anything is sent or written, and spoken to with it', async () => {
    const requests: string[] = [];
    const server = http.createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: 'UNAUTHORIZED', message: 'unknown enrol secret' }));
    });
    const port = await listen(server, '0.0.0.0');
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-http-'));
    const stateDir = path.join(tmp, 'state');
    try {
      const url = `http://${lanAddress ?? 'patchops.example.com'}:${port}`;
      const refused = startAgent([
        '--server',
        url,
        '--enroll-secret',
        'enrol-secret-0123456789',
        '--state-dir',
        stateDir,
        '--no-reboot',
      ]);
      expect(await refused.code).toBe(1);
      expect(refused.output()).toContain(`the server URL ${url} is plain http`);
      expect(refused.output()).toContain('--insecure-http');
      expect(requests).toEqual([]);
      await expect(fs.access(stateDir)).rejects.toThrow();

      if (!lanAddress) return;
      const allowed = startAgent([
        '--server',
        url,
        '--insecure-http',
        '--enroll-secret',
        'enrol-secret-0123456789',
        '--state-dir',
        stateDir,
        '--no-reboot',
      ]);
      expect(await allowed.code).toBe(1); // the server refuses the secret: the agent did speak to it
      expect(allowed.output()).toContain('enrolment refused');
      expect(requests).toEqual(['POST /agent/v1/enroll']);
    } finally {
      server.close();
      await fs.rm(tmp, { recursive: true, force: true });
    }
  }, 30_000);
});

/**
 * A hostile gateway: it speaks the agent protocol and signs an honest manifest with the key it hands out at
 * enrolment, but serves the file the way an attacker on the path (or a broken cache) would.
 */
async function hostileGateway(serve: 'honest' | 'endless' | 'announced-bigger' | 'bigger') {
  const keys = generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const content = Buffer.from('#!/bin/sh\necho the real installer 1.0\n'.repeat(64));
  const sha256 = createHash('sha256').update(content).digest('hex');
  const body: ManifestBody = {
    version: 1,
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    files: [{ name: 'tool-1.0.bin', sha256, size: content.length }],
  };
  const manifest = {
    body: JSON.stringify(body),
    signature: sign(null, Buffer.from(JSON.stringify(body)), keys.privateKey).toString('base64'),
    keyId: 1,
  };
  const job: AgentJob = {
    id: 'job-1',
    kind: 'install',
    payload: {
      patches: [{ patchId: 'third-party:tool:1.0', packages: [{ manager: 'file', name: 'tool-1.0.bin', sha256 }] }],
      reboot: { behaviour: 'never' },
    },
    deadline: null,
    leaseExpiresAt: new Date(Date.now() + 600_000).toISOString(),
  };
  let handedOut = false;
  const sent = { bytes: 0, closed: false };
  let resolveResult: (r: JobResult) => void;
  const result = new Promise<JobResult>((r) => (resolveResult = r));
  const json = (res: http.ServerResponse, status: number, v: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const u = new URL(req.url!, 'http://x');
      if (req.method === 'POST' && u.pathname === '/agent/v1/enroll')
        return json(res, 200, {
          endpointId: 'ep-1',
          nodeKey: 'k'.repeat(43),
          manifestSigningKey: keys.publicKey,
          protocolVersion: 1,
          pollIntervalSeconds: 1,
        });
      if (req.method === 'PUT' && u.pathname === '/agent/v1/inventory') return res.writeHead(204).end();
      if (req.method === 'GET' && u.pathname === '/agent/v1/jobs') {
        if (!handedOut) {
          handedOut = true;
          return json(res, 200, { jobs: [job], distributionPoints: [] });
        }
        return void setTimeout(() => json(res, 200, { jobs: [], distributionPoints: [] }), 1000);
      }
      if (req.method === 'GET' && u.pathname === '/agent/v1/manifest') return json(res, 200, manifest);
      if (req.method === 'POST' && u.pathname === `/agent/v1/jobs/${job.id}/result`) {
        resolveResult(JSON.parse(text) as JobResult);
        return json(res, 200, { outcome: 'recorded' });
      }
      if (req.method === 'GET' && u.pathname === `/agent/v1/files/${sha256}`) {
        res.on('close', () => (sent.closed = true));
        if (serve === 'honest') return res.writeHead(200, { 'content-length': content.length }).end(content);
        if (serve === 'announced-bigger') {
          res.writeHead(200, { 'content-length': 64 * 1024 * 1024 });
          sent.bytes += content.length;
          return void res.write(content);
        }
        if (serve === 'bigger') {
          res.writeHead(200);
          res.write(content);
          sent.bytes += content.length;
          return res.end('#!/bin/sh\necho and something else\n');
        }
        // endless: the real bytes, then filler for as long as the agent reads.
        res.writeHead(200);
        const chunk = Buffer.alloc(64 * 1024, 0x41);
        const pump = () => {
          while (!sent.closed && sent.bytes < 8 * 1024 ** 3) {
            sent.bytes += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
        };
        return pump();
      }
      json(res, 404, { error: 'NOT_FOUND', message: `${req.method} ${u.pathname}` });
    });
  });
  const port = await listen(server, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}`,
    result,
    sent,
    content,
    close: () => (server.closeAllConnections(), server.close()),
  };
}

describe('a download the signed manifest does not allow', () => {
  async function attack(serve: Parameters<typeof hostileGateway>[0]) {
    const gw = await hostileGateway(serve);
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-dl-attack-'));
    const agent = startAgent([
      '--server',
      gw.url,
      '--enroll-secret',
      'enrol-secret-0123456789',
      '--state-dir',
      stateDir,
      '--no-reboot',
      '--wait',
      '1',
      '--machine-id',
      `attack-${serve}-0000`,
    ]);
    try {
      const result = await Promise.race([
        gw.result,
        agent.code.then((c) => Promise.reject(new Error(`the agent exited ${c}:\n${agent.output()}`))),
      ]);
      const downloads = await fs.readdir(path.join(stateDir, 'downloads')).catch(() => []);
      return { result, downloads, sent: gw.sent };
    } finally {
      agent.kill();
      await agent.code;
      gw.close();
      await fs.rm(stateDir, { recursive: true, force: true });
    }
  }

  it('an honest server: the file is fetched, verified and handed to the installer (control)', async () => {
    const { result, downloads } = await attack('honest');
    expect(result.error).not.toMatch(/bad_size|bad_hash|refused/);
    // Verified, then refused by the file installer only because no installer takes a .bin: the bytes got through.
    expect(result.error).toContain('do not know how to install');
    expect(downloads).toHaveLength(1);
  }, 30_000);

  it.each([
    ['an endless body', 'endless'],
    ["a Content-Length bigger than the manifest's size", 'announced-bigger'],
    ["more bytes than the manifest's size, unannounced", 'bigger'],
  ] as const)(
    '%s: refused (bad_size), the transfer cut short, nothing written, nothing installed',
    async (_name, serve) => {
      const { result, downloads, sent } = await attack(serve);
      expect(result.status).toBe('failed');
      expect(result.error).toMatch(/refused \(bad_size\)/);
      expect(result.patches).toEqual([expect.objectContaining({ patchId: 'third-party:tool:1.0', state: 'failed' })]);
      expect(result.error).not.toContain('do not know how to install'); // the installer was never called
      expect(downloads).toEqual([]); // no partial file left behind
      // The agent stopped reading: at most what the socket buffers held when it hung up.
      if (serve === 'endless') {
        expect(sent.closed).toBe(true);
        expect(sent.bytes).toBeLessThan(64 * 1024 * 1024);
      }
    },
    30_000,
  );
});
