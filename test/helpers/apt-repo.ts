/**
 * A local signed apt repository and a throwaway dpkg/apt root, built with the real tools (dpkg-deb,
 * apt-ftparchive from apt-utils, gpg). Nothing touches the host's own package state: apt and dpkg are
 * pointed at the root with -o Dir=… and --root/--admindir.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { missingCommands, skipWithout } from './tools';

export interface AptTestRepo {
  dir: string;
  root: string;
  repo: string;
  packageName: string;
  cleanup(): Promise<void>;
}

const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd?: string) =>
  execFileSync(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** The commands the apt round trip runs, and the Debian packages that bring them. */
export const APT_TOOLS = ['dpkg-deb', 'apt-ftparchive', 'gpg', 'gpgconf', 'apt-get', 'dpkg-query'];
export const APT_TOOL_PACKAGES = 'apt-utils gpg';

export function missingAptTools(): string[] {
  return missingCommands(APT_TOOLS);
}

/** For `describe.skipIf(...)`: true, with a visible warning, when a tool of the apt round trip is missing. */
export function skipWithoutAptTools(what: string): boolean {
  return skipWithout(APT_TOOLS, what, APT_TOOL_PACKAGES);
}

/** Builds versions `versions` of `packageName` into a signed repo with a security suite, and an empty root trusting its key. */
export async function buildAptTestRepo(
  o: { packageName?: string; versions?: string[]; installFirst?: boolean } = {},
): Promise<AptTestRepo> {
  const missing = missingAptTools();
  if (missing.length)
    throw new Error(
      `missing tools for the apt round trip: ${missing.join(', ')} (apt-get install -y ${APT_TOOL_PACKAGES})`,
    );
  const packageName = o.packageName ?? 'patchops-demo';
  const versions = o.versions ?? ['1.0', '2.0'];
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-apt-'));
  const repo = path.join(dir, 'repo');
  const root = path.join(dir, 'root');
  await fs.mkdir(repo, { recursive: true });
  for (const v of versions) {
    const pkg = path.join(dir, `build-${v}`);
    await fs.mkdir(path.join(pkg, 'DEBIAN'), { recursive: true });
    await fs.mkdir(path.join(pkg, 'usr/share', packageName), { recursive: true });
    await fs.writeFile(
      path.join(pkg, 'DEBIAN/control'),
      `Package: ${packageName}\nVersion: ${v}\nArchitecture: all\nMaintainer: patchops tests <tests@example.com>\nDescription: patchops apt round-trip test package\n`,
    );
    await fs.writeFile(path.join(pkg, 'usr/share', packageName, 'version'), `${v}\n`);
    run('dpkg-deb', ['--build', '-Zgzip', pkg, path.join(repo, `${packageName}_${v}_all.deb`)]);
  }
  const gnupg = path.join(dir, 'gnupg');
  await fs.mkdir(gnupg, { mode: 0o700 });
  const genv = { ...process.env, GNUPGHOME: gnupg };
  run(
    'gpg',
    [
      '--batch',
      '--passphrase',
      '',
      '--quick-gen-key',
      'patchops test repo <tests@example.com>',
      'ed25519',
      'sign',
      'never',
    ],
    genv,
  );
  await fs.writeFile(path.join(repo, 'Packages'), run('apt-ftparchive', ['packages', '.'], process.env, repo));
  const release = run(
    'apt-ftparchive',
    [
      '-o',
      'APT::FTPArchive::Release::Origin=patchops-test',
      '-o',
      'APT::FTPArchive::Release::Label=patchops-test-security',
      '-o',
      'APT::FTPArchive::Release::Suite=stable-security',
      'release',
      '.',
    ],
    process.env,
    repo,
  );
  await fs.writeFile(path.join(repo, 'Release'), release);
  run('gpg', ['--batch', '--yes', '--clearsign', '-o', 'InRelease', 'Release'], genv, repo);
  run('gpg', ['--batch', '--yes', '-abs', '-o', 'Release.gpg', 'Release'], genv, repo);
  for (const d of [
    'etc/apt/trusted.gpg.d',
    'etc/apt/sources.list.d',
    'etc/apt/preferences.d',
    'etc/apt/apt.conf.d',
    'var/lib/dpkg/updates',
    'var/lib/dpkg/info',
    'var/lib/apt/lists/partial',
    'var/cache/apt/archives/partial',
    'var/log/apt',
    'var/run',
  ]) {
    await fs.mkdir(path.join(root, d), { recursive: true });
  }
  await fs.writeFile(path.join(root, 'var/lib/dpkg/status'), '');
  await fs.writeFile(path.join(root, 'var/lib/dpkg/available'), '');
  await fs.writeFile(
    path.join(root, 'etc/apt/trusted.gpg.d/patchops-test.gpg'),
    execFileSync('gpg', ['--export'], { env: genv }),
  );
  await fs.writeFile(path.join(root, 'etc/apt/sources.list'), `deb file:${repo} ./\n`);
  // gpg started an agent for this keyring: end it, or it outlives the test run.
  const stopAgent = () => {
    try {
      execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env: genv, stdio: 'ignore' });
    } catch {
      // no agent running, or no gpgconf: nothing to stop
    }
  };
  stopAgent();
  return { dir, root, repo, packageName, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
}

/** Installs one version into the throwaway root with apt itself (setup for a test, not the code under test). */
export function aptInstallInto(root: string, spec: string): void {
  const o = [
    '-o',
    `Dir=${root}`,
    '-o',
    `Dir::State::status=${root}/var/lib/dpkg/status`,
    '-o',
    `DPkg::Options::=--root=${root}`,
    '-o',
    `DPkg::Options::=--admindir=${root}/var/lib/dpkg`,
    '-o',
    'DPkg::Options::=--force-not-root',
    '-o',
    'DPkg::Options::=--force-bad-path',
    '-o',
    'APT::Sandbox::User=root',
  ];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', [...o, 'update', '-q'], env);
  run('apt-get', [...o, 'install', '-y', '-q', spec], env);
}
