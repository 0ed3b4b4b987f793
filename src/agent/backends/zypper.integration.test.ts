import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testJobRunner } from '../../../test/helpers/job-runner';
import {
  buildRpmTestRepo,
  missingRpmTools,
  zypperInstallInto,
  zypperRoot,
  type RpmTestRepo,
} from '../../../test/helpers/rpm-repo';
import { execFile } from '../exec';
import { parseZypperInstallSummary, parseZypperPatchesXml, parseZypperUpdatesXml, ZypperBackend } from './zypper';

const missing = missingRpmTools('zypper');
if (missing.length)
  console.warn(
    `zypper round trip skipped: missing ${missing.join(', ')} (apt-get install -y rpm zypper createrepo-c gpg)`,
  );

let t: RpmTestRepo;
let root: string;
beforeAll(async () => {
  if (missing.length) return;
  t = await buildRpmTestRepo();
  // zypper --root still logs to the host's /var/log/zypper.log unless told otherwise (libzypp's ZYPP_LOGFILE)
  process.env.ZYPP_LOGFILE = path.join(t.dir, 'zypper.log');
  root = await zypperRoot(t);
  zypperInstallInto(root, ['patchops-demo=1:1.0-1', 'patchops-tools=1.0-1', 'patchops-extra=1.0-1']);
}, 180_000);
afterAll(async () => {
  await t?.cleanup();
});

const zypperHere = (args: string[]) =>
  execFile('zypper', ['--non-interactive', '--root', root, ...args], { env: { ...process.env, LC_ALL: 'C' } });
const readVersion = async (name: string) =>
  (await fs.readFile(path.join(root, 'usr/share', name, 'version'), 'utf8')).trim();

function runnerFor(backend: ZypperBackend) {
  return testJobRunner([['zypper', backend]], path.join(t.dir, 'dl'));
}

describe.skipIf(missing.length > 0)(
  'zypper backend, for real (zypper 1.14, signed local rpm-md repository whose updateinfo zypper reads as patches, throwaway --root)',
  () => {
    it("parses zypper's own XML: the patches with category, severity and CVEs, the plan of one patch, the updates", async () => {
      const lp = await zypperHere(['--xmlout', 'list-patches']);
      expect(lp.code, lp.stderr).toBe(0);
      expect(lp.stdout).toContain('<update kind="patch" name="PATCHOPS-2026:0001"');
      expect(lp.stdout).toMatch(/name="PATCHOPS-2026:0002"[^>]* restart="true" interactive="true"/);
      expect(parseZypperPatchesXml(lp.stdout)).toEqual([
        {
          name: 'PATCHOPS-2026:0001',
          category: 'security',
          severity: 'important',
          status: 'needed',
          summary: 'Important: patchops-demo security update',
          repository: 'patchops-test',
          cves: ['CVE-2026-990001', 'CVE-2026-990002'],
          reboot: false,
          issued: '2026-11-02T00:00:00Z',
        },
        {
          name: 'PATCHOPS-2026:0002',
          category: 'recommended',
          severity: '',
          status: 'needed',
          summary: 'Recommended update for patchops-tools',
          repository: 'patchops-test',
          cves: [],
          reboot: true, // <reboot_suggested>True</reboot_suggested> in the updateinfo: zypper says restart="true"
          issued: '2026-11-02T00:00:00Z',
        },
      ]);
      const plan = await zypperHere(['--xmlout', 'install', '--dry-run', '-t', 'patch', '--', 'PATCHOPS-2026:0001']);
      expect(plan.code, plan.stderr).toBe(0);
      expect(parseZypperInstallSummary(plan.stdout)).toEqual([
        { type: 'package', name: 'patchops-demo', edition: '1:2.0-1', editionOld: '1:1.0-1', arch: 'noarch' },
        { type: 'patch', name: 'PATCHOPS-2026:0001', edition: '1', editionOld: undefined, arch: 'noarch' },
      ]);
      const lu = await zypperHere(['--xmlout', 'list-updates']);
      expect(parseZypperUpdatesXml(lu.stdout).map((u) => [u.name, u.edition, u.editionOld])).toEqual([
        ['patchops-demo', '1:2.0-1', '1:1.0-1'],
        ['patchops-extra', '2.0-1', '1.0-1'],
        ['patchops-tools', '2.0-1', '1.0-1'],
      ]);
    }, 120_000);

    it('scans (the security patch with its severity and CVEs), installs 1:2.0-1 exactly, verifies, and rolls back to 1:1.0-1', async () => {
      const zypper = new ZypperBackend({ root });
      const { runner, state } = runnerFor(zypper);
      expect(await readVersion('patchops-demo')).toBe('1.0');

      const scan = await runner.run({
        id: 's1',
        kind: 'scan',
        payload: {},
        deadline: null,
        leaseExpiresAt: new Date().toISOString(),
      });
      expect(scan.status, scan.error).toBe('succeeded');
      const byId = new Map(scan.missing!.map((p) => [p.patchId, p]));
      expect([...byId.keys()].sort()).toEqual(['PATCHOPS-2026:0001', 'PATCHOPS-2026:0002', 'rpm:patchops-extra:2.0-1']);
      const patch = byId.get('PATCHOPS-2026:0001')!;
      expect(patch).toMatchObject({
        type: 'security',
        vendorSeverity: 'important',
        severitySource: 'suse',
        cves: ['CVE-2026-990001', 'CVE-2026-990002'],
        packages: [{ manager: 'zypper', name: 'patchops-demo', version: '1:2.0-1' }],
      });
      expect(byId.get('PATCHOPS-2026:0002')).toMatchObject({
        type: 'bug_fix',
        rebootRequired: true,
        packages: [{ manager: 'zypper', name: 'patchops-tools', version: '2.0-1' }],
      });
      expect(byId.get('rpm:patchops-extra:2.0-1')).toMatchObject({
        type: 'update',
        packages: [{ manager: 'zypper', name: 'patchops-extra', version: '2.0-1' }],
      });

      const payload = {
        patches: [{ patchId: patch.patchId, packages: patch.packages, rebootRequired: false }],
        reboot: { behaviour: 'never' },
      };
      const install = await runner.run({ id: 'i1', kind: 'install', payload, deadline: null, leaseExpiresAt: '' });
      expect(install.status, install.error).toBe('succeeded');
      expect(install.patches).toEqual([{ patchId: patch.patchId, state: 'installed', installedVersion: '1:2.0-1' }]);
      expect(await readVersion('patchops-demo')).toBe('2.0');
      expect(await readVersion('patchops-tools')).toBe('1.0');
      expect(state().previousVersions.zypper!['patchops-demo']).toBe('1:1.0-1');
      // zypper itself now counts the patch as applied
      const lp = parseZypperPatchesXml((await zypperHere(['--xmlout', 'list-patches', '--all'])).stdout);
      expect(lp.find((p) => p.name === 'PATCHOPS-2026:0001')!.status).toBe('applied');

      const verify = await runner.run({ id: 'v1', kind: 'verify', payload, deadline: null, leaseExpiresAt: '' });
      expect(verify.status, verify.error).toBe('succeeded');
      const rescan = await runner.run({ id: 's2', kind: 'scan', payload: {}, deadline: null, leaseExpiresAt: '' });
      expect(rescan.missing!.map((p) => p.patchId).sort()).toEqual(['PATCHOPS-2026:0002', 'rpm:patchops-extra:2.0-1']);

      const rollback = await runner.run({
        id: 'r1',
        kind: 'rollback',
        payload: { patches: [{ ...payload.patches[0], previousVersions: { 'patchops-demo': '1:1.0-1' } }] },
        deadline: null,
        leaseExpiresAt: '',
      });
      expect(rollback.status, rollback.error).toBe('succeeded');
      expect(rollback.patches[0]!.state).toBe('rolled_back');
      expect(await readVersion('patchops-demo')).toBe('1.0');
      const verifyAfter = await runner.run({ id: 'v2', kind: 'verify', payload, deadline: null, leaseExpiresAt: '' });
      expect(verifyAfter.status).toBe('failed');
      expect(verifyAfter.patches[0]).toMatchObject({
        state: 'missing',
        error: 'patchops-demo is at 1:1.0-1, expected 1:2.0-1',
      });
    }, 180_000);

    it('an install of a version the repository does not have fails in the dry run and changes nothing', async () => {
      const zypper = new ZypperBackend({ root, refresh: false });
      const res = await zypper.install([{ manager: 'zypper', name: 'patchops-demo', version: '1:9.9-1' }]);
      expect(res.ok).toBe(false);
      expect(res.error).toMatch(
        /^dry run refused the change: zypper install --dry-run failed \(104\): No provider of 'patchops-demo=1:9\.9-1' found/,
      );
      expect((await zypper.installedVersions(['patchops-demo'])).get('patchops-demo')).toBe('1:1.0-1');
    }, 60_000);

    it('an option-looking package name is refused as a name, never applied as an option (no downgrade through install)', async () => {
      const zypper = new ZypperBackend({ root, refresh: false });
      zypperInstallInto(root, ['patchops-extra=2.0-1']);
      // the control: install never downgrades (zypper wants --oldpackage for that)
      const plain = await zypper.install([{ manager: 'zypper', name: 'patchops-extra', version: '1.0-1' }]);
      expect(plain.ok).toBe(true); // zypper says "Nothing to do"; the runner's version check reports it
      expect((await zypper.installedVersions(['patchops-extra'])).get('patchops-extra')).toBe('2.0-1');
      // a "name" that would allow the downgrade if zypper read it as an option
      const res = await zypper.install([
        { manager: 'zypper', name: '--oldpackage' },
        { manager: 'zypper', name: 'patchops-extra', version: '1.0-1' },
      ]);
      expect(res.ok).toBe(false);
      expect(res.error).toMatch(/is not a package name or capability/);
      expect((await zypper.installedVersions(['patchops-extra'])).get('patchops-extra')).toBe('2.0-1');
    }, 60_000);
  },
);
