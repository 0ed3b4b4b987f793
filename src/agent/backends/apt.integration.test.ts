import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testJobRunner } from '../../../test/helpers/job-runner';
import {
  aptInstallInto,
  buildAptTestRepo,
  skipWithoutAptTools,
  type AptTestRepo,
} from '../../../test/helpers/apt-repo';
import { AptBackend } from './apt';

const skip = skipWithoutAptTools('the apt backend round trip (src/agent/backends/apt.integration.test.ts)');
let t: AptTestRepo;
beforeAll(async () => {
  if (skip) return;
  t = await buildAptTestRepo();
  aptInstallInto(t.root, `${t.packageName}=1.0`);
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

describe.skipIf(skip)('apt backend, for real (signed local repository, throwaway root)', () => {
  it('scans (sees 2.0 missing as a security update), installs 2.0 exactly, verifies, and rolls back to 1.0', async () => {
    const apt = new AptBackend({ root: t.root });
    const versionFile = path.join(t.root, 'usr/share', t.packageName, 'version');
    expect((await fs.readFile(versionFile, 'utf8')).trim()).toBe('1.0');
    expect((await apt.installedVersions([t.packageName])).get(t.packageName)).toBe('1.0');

    const { runner, state } = testJobRunner([['apt', apt]], path.join(t.dir, 'dl'));

    const scan = await runner.run({
      id: 's1',
      kind: 'scan',
      payload: {},
      deadline: null,
      leaseExpiresAt: new Date().toISOString(),
    });
    expect(scan.status, scan.error).toBe('succeeded');
    expect(scan.missing).toHaveLength(1);
    const patch = scan.missing![0]!;
    expect(patch).toMatchObject({
      patchId: `apt:${t.packageName}:2.0`,
      type: 'security',
      packages: [{ manager: 'apt', name: t.packageName, version: '2.0' }],
    });

    const payload = {
      patches: [{ patchId: patch.patchId, packages: patch.packages, rebootRequired: false }],
      reboot: { behaviour: 'never' },
    };
    const install = await runner.run({ id: 'i1', kind: 'install', payload, deadline: null, leaseExpiresAt: '' });
    expect(install.status, install.error).toBe('succeeded');
    expect(install.patches).toEqual([{ patchId: patch.patchId, state: 'installed', installedVersion: '2.0' }]);
    expect((await fs.readFile(versionFile, 'utf8')).trim()).toBe('2.0');
    expect(state().previousVersions.apt![t.packageName]).toBe('1.0');

    const verify = await runner.run({ id: 'v1', kind: 'verify', payload, deadline: null, leaseExpiresAt: '' });
    expect(verify.patches[0]!.state).toBe('installed');
    const rescan = await runner.run({ id: 's2', kind: 'scan', payload: {}, deadline: null, leaseExpiresAt: '' });
    expect(rescan.missing).toEqual([]);

    // rollback with the version from the payload (the server's record) — and the agent's own memory agrees
    const rollback = await runner.run({
      id: 'r1',
      kind: 'rollback',
      payload: { patches: [{ ...payload.patches[0], previousVersions: { [t.packageName]: '1.0' } }] },
      deadline: null,
      leaseExpiresAt: '',
    });
    expect(rollback.status, rollback.error).toBe('succeeded');
    expect(rollback.patches[0]!.state).toBe('rolled_back');
    expect((await fs.readFile(versionFile, 'utf8')).trim()).toBe('1.0');
    const verifyAfter = await runner.run({ id: 'v2', kind: 'verify', payload, deadline: null, leaseExpiresAt: '' });
    expect(verifyAfter.status).toBe('failed');
    expect(verifyAfter.patches[0]).toMatchObject({ state: 'missing' });
  }, 120_000);

  it('an install of a version the repository does not have fails in simulation and changes nothing', async () => {
    const apt = new AptBackend({ root: t.root, refresh: false });
    const res = await apt.install([{ manager: 'apt', name: t.packageName, version: '9.9' }]);
    expect(res.ok).toBe(false);
    expect(res.error).toMatch(/simulation refused/);
    expect((await apt.installedVersions([t.packageName])).get(t.packageName)).toBe('1.0');
  }, 60_000);

  it('an option-looking package name is refused as a name, never applied as an option (DPkg::Pre-Invoke runs nothing)', async () => {
    const apt = new AptBackend({ root: t.root, refresh: false });
    const marker = path.join(t.dir, 'pre-invoke-ran');
    // read as an option, this "name" makes apt run a shell command before dpkg installs the real package
    const res = await apt.install([
      { manager: 'apt', name: `-oDPkg::Pre-Invoke::=touch ${marker}` },
      { manager: 'apt', name: t.packageName, version: '2.0' },
    ]);
    expect(res.ok).toBe(false);
    expect(res.error).toMatch(/Unable to locate package -oDPkg::Pre-Invoke::=touch/);
    await expect(fs.stat(marker)).rejects.toThrow(/ENOENT/);
    expect((await apt.installedVersions([t.packageName])).get(t.packageName)).toBe('1.0');
  }, 60_000);
});
