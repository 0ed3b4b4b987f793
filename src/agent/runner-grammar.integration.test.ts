/**
 * The agent's own grammar check (src/agent/runner.ts, src/shared/package-names.ts) against the real apt backend in a
 * throwaway root: a job naming `-oDPkg::Pre-Invoke::=<command>` as a package ran that command (apt-get reads the
 * name as an option; dpkg runs the hook before installing the real package next to it). Now the job is refused
 * before any tool runs.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testJobRunner } from '../../test/helpers/job-runner';
import { aptInstallInto, buildAptTestRepo, missingAptTools, type AptTestRepo } from '../../test/helpers/apt-repo';
import { AptBackend } from './backends/apt';
import type { Backend } from './backends/types';
import { execFile, type Exec } from './exec';
import { RecordingRebooter } from './reboot';
import { JobRunner } from './runner';

const missing = missingAptTools();
if (missing.length > 0)
  console.warn(
    `skipping the agent grammar test against real apt: missing ${missing.join(', ')} (apt-get install -y apt-utils gpg dpkg-dev)`,
  );

let t: AptTestRepo;
beforeAll(async () => {
  if (missing.length > 0) return;
  t = await buildAptTestRepo({ packageName: 'patchops-grammar' });
  aptInstallInto(t.root, `${t.packageName}=1.0`);
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

function runnerWith(exec: Exec) {
  return testJobRunner([['apt', new AptBackend({ root: t.root, exec, refresh: false })]], path.join(t.dir, 'dl'))
    .runner;
}

describe.skipIf(missing.length > 0)(
  'agent: package names outside the grammar are refused before anything runs (real apt, throwaway root)',
  () => {
    it('an install naming -oDPkg::Pre-Invoke::=<command> fails with the reason; the command never runs and no tool is started', async () => {
      const marker = path.join(t.dir, 'pwned');
      const calls: string[][] = [];
      const recording: Exec = (cmd, args, o) => {
        calls.push([cmd, ...args]);
        return execFile(cmd, args, o);
      };
      const payload = {
        patches: [
          {
            patchId: `apt:${t.packageName}:2.0`,
            packages: [
              { manager: 'apt', name: `-oDPkg::Pre-Invoke::=touch ${marker}` },
              { manager: 'apt', name: t.packageName, version: '2.0' },
            ],
            rebootRequired: false,
          },
        ],
        reboot: { behaviour: 'never' },
      };
      const res = await runnerWith(recording).run({
        id: 'i-evil',
        kind: 'install',
        payload,
        deadline: null,
        leaseExpiresAt: '',
      });
      // First what matters: the command did not run (without the check, dpkg's Pre-Invoke hook creates the marker).
      await expect(fs.access(marker).then(() => 'the injected command ran')).rejects.toThrow();
      expect(res.status).toBe('failed');
      expect(res.error).toMatch(
        /^refused the install job before running anything: apt:patchops-grammar:2\.0: apt package name "-oDPkg::Pre-Invoke::=touch .*" is not a Debian package name/,
      );
      expect(res.patches).toEqual([expect.objectContaining({ patchId: `apt:${t.packageName}:2.0`, state: 'failed' })]);
      expect(calls).toEqual([]);
      expect(
        execFileSync('dpkg-query', [
          `--admindir=${t.root}/var/lib/dpkg`,
          '-W',
          '-f',
          '${Version}',
          t.packageName,
        ]).toString(),
      ).toBe('1.0');
    }, 120_000);

    it('a rollback whose previousVersions name an option instead of a package is refused the same way', async () => {
      const marker = path.join(t.dir, 'pwned-rollback');
      const calls: string[][] = [];
      const recording: Exec = (cmd, args, o) => {
        calls.push([cmd, ...args]);
        return execFile(cmd, args, o);
      };
      const res = await runnerWith(recording).run({
        id: 'r-evil',
        kind: 'rollback',
        payload: {
          patches: [
            {
              patchId: 'P',
              packages: [{ manager: 'apt', name: t.packageName, version: '2.0' }],
              previousVersions: { [t.packageName]: `1.0 -oDPkg::Post-Invoke::=touch ${marker}` },
            },
          ],
        },
        deadline: null,
        leaseExpiresAt: '',
      });
      expect(res.status).toBe('failed');
      expect(res.error).toMatch(
        /previousVersions: apt version "1\.0 -oDPkg::Post-Invoke::=touch .*" of "patchops-grammar" is not a Debian version/,
      );
      expect(calls).toEqual([]);
      await expect(fs.access(marker)).rejects.toThrow();
    }, 60_000);

    it('a well-formed install still runs (the check refuses only what is outside the grammar)', async () => {
      const res = await runnerWith(execFile).run({
        id: 'i-ok',
        kind: 'install',
        payload: {
          patches: [
            {
              patchId: `apt:${t.packageName}:2.0`,
              packages: [{ manager: 'apt', name: t.packageName, version: '2.0' }],
              rebootRequired: false,
            },
          ],
          reboot: { behaviour: 'never' },
        },
        deadline: null,
        leaseExpiresAt: '',
      });
      expect(res.status, res.error).toBe('succeeded');
      expect((await fs.readFile(path.join(t.root, 'usr/share', t.packageName, 'version'), 'utf8')).trim()).toBe('2.0');
    }, 120_000);
  },
);

describe('agent: the grammar check for every backend, before the backend is asked anything', () => {
  const recordingBackend = (name: string, calls: string[]): Backend => ({
    name,
    scan: async () => [],
    install: async (p) => (calls.push(`install ${p.map((x) => x.name).join(' ')}`), { ok: true, log: '' }),
    rollback: async (p) => (calls.push(`rollback ${p.map((x) => x.name).join(' ')}`), { ok: true, log: '' }),
    installedVersions: async (n) => (calls.push(`versions ${n.join(' ')}`), new Map(n.map((x) => [x, null]))),
    inventory: async () => [],
  });
  const runner = (calls: string[]) =>
    new JobRunner({
      backends: new Map(
        ['winget', 'windows-update', 'dnf', 'zypper', 'brew', 'softwareupdate'].map((n) => [
          n,
          recordingBackend(n, calls),
        ]),
      ),
      getState: () => ({
        serverUrl: 'x',
        endpointId: 'e',
        nodeKey: 'k',
        manifestSigningKey: '',
        machineId: 'm',
        lastManifestVersion: 0,
        previousVersions: {},
      }),
      updateState: async () => undefined,
      rebooter: new RecordingRebooter(),
      fetchManifest: () => Promise.reject(new Error('no files in this test')),
      sources: () => [],
      downloadDir: os.tmpdir(),
      log: pino({ level: 'silent' }),
    });

  it.each([
    [
      'winget',
      { manager: 'winget', name: '--override', version: '1.0' },
      /winget package name "--override" is not a winget package identifier/,
    ],
    ['windows-update', { manager: 'windows-update', name: 'KB1,5034441' }, /is not a KB number/],
    [
      'dnf',
      { manager: 'dnf', name: 'openssl', version: '1:3.0.7-25.el9 --setopt=tsflags=noscripts' },
      /dnf version .* of "openssl" is not an RPM/,
    ],
    ['zypper', { manager: 'zypper', name: '--from=evil-repo' }, /is not a zypper patch id/],
    ['brew', { manager: 'brew', name: 'cask:--appdir=/tmp' }, /is not a Homebrew formula or cask/],
    ['softwareupdate', { manager: 'softwareupdate', name: '--all' }, /is not a softwareupdate label/],
  ])('%s: an option in place of a package fails the job; the backend is never called', async (_m, ref, why) => {
    for (const kind of ['install', 'verify', 'rollback'] as const) {
      const calls: string[] = [];
      const res = await runner(calls).run({
        id: `${kind}-1`,
        kind,
        payload: { patches: [{ patchId: 'P', packages: [ref], rebootRequired: false }] },
        deadline: null,
        leaseExpiresAt: '',
      });
      expect(res.status).toBe('failed');
      expect(res.error).toMatch(why);
      expect(calls).toEqual([]);
    }
  });

  it('an install naming no packages for a patch is refused (it would report success having done nothing)', async () => {
    const calls: string[] = [];
    const res = await runner(calls).run({
      id: 'i-empty',
      kind: 'install',
      payload: { patches: [{ patchId: 'KB5034441', packages: [], rebootRequired: false }] },
      deadline: null,
      leaseExpiresAt: '',
    });
    expect(res).toMatchObject({ status: 'failed', patches: [{ patchId: 'KB5034441', state: 'failed' }] });
    expect(res.error).toMatch(/KB5034441: names no packages to install \(rescan the endpoint/);
    expect(calls).toEqual([]);
  });
});
