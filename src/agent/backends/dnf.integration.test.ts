import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testJobRunner } from '../../../test/helpers/job-runner';
import {
  buildRpmTestRepo,
  dnfInstallInto,
  dnfRoot,
  missingRpmTools,
  type RpmTestRepo,
} from '../../../test/helpers/rpm-repo';
import { execFile } from '../exec';
import { DnfBackend, parseCheckUpdate, parseUpdateInfoList } from './dnf';

const missing = missingRpmTools('dnf');
if (missing.length)
  console.warn(`dnf round trip skipped: missing ${missing.join(', ')} (apt-get install -y rpm dnf createrepo-c gpg)`);

let t: RpmTestRepo;
let root: string;
beforeAll(async () => {
  if (missing.length) return;
  t = await buildRpmTestRepo();
  root = await dnfRoot(t);
  dnfInstallInto(root, ['patchops-demo-1:1.0-1', 'patchops-tools-1.0-1', 'patchops-extra-1.0-1']);
}, 180_000);
afterAll(async () => {
  await t?.cleanup();
});

const dnfHere = (args: string[]) =>
  execFile('dnf', [`--installroot=${root}`, '-q', ...args], { env: { ...process.env, LC_ALL: 'C' } });
const versionFile = (name: string) => path.join(root, 'usr/share', name, 'version');
const readVersion = async (name: string) => (await fs.readFile(versionFile(name), 'utf8')).trim();

function runnerFor(backend: DnfBackend) {
  return testJobRunner(
    [
      ['dnf', backend],
      ['yum', backend],
    ],
    path.join(t.dir, 'dl'),
  );
}

describe.skipIf(missing.length > 0)(
  'dnf backend, for real (dnf 4, signed local rpm-md repository with updateinfo, throwaway --installroot)',
  () => {
    it("parses dnf's own output: the epoch in the NEVRA, the advisory of type unknown, the upgrade without an advisory", async () => {
      const list = await dnfHere(['updateinfo', 'list', '--available']);
      expect(list.code, list.stderr).toBe(0);
      // dnf prints name-epoch:version-release.arch
      expect(list.stdout).toMatch(/^PATCHOPS-2026:0001\s+Important\/Sec\.\s+patchops-demo-1:2\.0-1\.noarch$/m);
      expect(list.stdout).toMatch(/^PATCHOPS-2026:0002\s+unknown\s+patchops-tools-2\.0-1\.noarch$/m);
      const lines = parseUpdateInfoList(list.stdout);
      expect(lines.map((l) => [l.id, l.type, l.severity, l.pkg.name, l.pkg.evr])).toEqual([
        ['PATCHOPS-2026:0001', 'security', 'Important', 'patchops-demo', '1:2.0-1'],
        ['PATCHOPS-2026:0002', 'unknown', '', 'patchops-tools', '2.0-1'],
      ]);
      const cves = await dnfHere(['updateinfo', 'list', '--available', '--with-cve']);
      expect(parseUpdateInfoList(cves.stdout).map((l) => [l.id, l.severity, l.pkg.evr])).toEqual([
        ['CVE-2026-990001', 'Important', '1:2.0-1'],
        ['CVE-2026-990002', 'Important', '1:2.0-1'],
      ]);
      const check = await dnfHere(['check-update']);
      expect(check.code).toBe(100);
      expect(parseCheckUpdate(check.stdout)).toEqual([
        { name: 'patchops-demo', arch: 'noarch', evr: '1:2.0-1', repo: 'patchops-test' },
        { name: 'patchops-extra', arch: 'noarch', evr: '2.0-1', repo: 'patchops-test' },
        { name: 'patchops-tools', arch: 'noarch', evr: '2.0-1', repo: 'patchops-test' },
      ]);
      // and rpm reads the installed version back in the same form
      expect(
        Object.fromEntries(
          await new DnfBackend({ root }).installedVersions(['patchops-demo', 'patchops-tools', 'nothing-such']),
        ),
      ).toEqual({
        'patchops-demo': '1:1.0-1',
        'patchops-tools': '1.0-1',
        'nothing-such': null,
      });
    }, 120_000);

    it('scans (the security advisory with its severity and CVEs), installs 1:2.0-1 exactly, verifies, and rolls back to 1:1.0-1', async () => {
      const dnf = new DnfBackend({ root });
      const { runner, state } = runnerFor(dnf);
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
        vendorSeverity: 'Important',
        severitySource: 'redhat',
        cves: ['CVE-2026-990001', 'CVE-2026-990002'],
        packages: [{ manager: 'dnf', name: 'patchops-demo', version: '1:2.0-1' }],
      });
      expect(byId.get('PATCHOPS-2026:0002')).toMatchObject({
        type: 'update',
        packages: [{ manager: 'dnf', name: 'patchops-tools', version: '2.0-1' }],
      });
      expect(byId.get('rpm:patchops-extra:2.0-1')).toMatchObject({
        type: 'update',
        cves: [],
        packages: [{ manager: 'dnf', name: 'patchops-extra', version: '2.0-1' }],
      });

      const payload = {
        patches: [{ patchId: patch.patchId, packages: patch.packages, rebootRequired: false }],
        reboot: { behaviour: 'never' },
      };
      const install = await runner.run({ id: 'i1', kind: 'install', payload, deadline: null, leaseExpiresAt: '' });
      expect(install.status, install.error).toBe('succeeded');
      expect(install.patches).toEqual([{ patchId: patch.patchId, state: 'installed', installedVersion: '1:2.0-1' }]);
      expect(await readVersion('patchops-demo')).toBe('2.0');
      expect(await readVersion('patchops-tools')).toBe('1.0'); // only what was asked for
      expect(state().previousVersions.dnf!['patchops-demo']).toBe('1:1.0-1');

      const verify = await runner.run({ id: 'v1', kind: 'verify', payload, deadline: null, leaseExpiresAt: '' });
      expect(verify.status, verify.error).toBe('succeeded');
      expect(verify.patches[0]!.state).toBe('installed');
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

    it('an install of a version the repository does not have fails in the test transaction and changes nothing', async () => {
      const dnf = new DnfBackend({ root });
      const res = await dnf.install([{ manager: 'dnf', name: 'patchops-demo', version: '1:9.9-1' }]);
      expect(res.ok).toBe(false);
      expect(res.error).toMatch(
        /^test transaction refused the change: [\s\S]*Unable to find a match: patchops-demo-1:9\.9-1/,
      );
      expect((await dnf.installedVersions(['patchops-demo'])).get('patchops-demo')).toBe('1:1.0-1');
    }, 60_000);

    it('without a previous version, a rollback undoes the transaction the install made (dnf history undo)', async () => {
      const dnf = new DnfBackend({ root });
      const pkgs = [{ manager: 'dnf', name: 'patchops-demo', version: '1:2.0-1' }];
      expect((await dnf.install(pkgs)).ok).toBe(true);
      expect(await readVersion('patchops-demo')).toBe('2.0');
      const res = await dnf.rollback(pkgs, {});
      expect(res.ok, res.error).toBe(true);
      expect(await readVersion('patchops-demo')).toBe('1.0');
      expect((await dnf.installedVersions(['patchops-demo'])).get('patchops-demo')).toBe('1:1.0-1');
      // a fresh backend knows no transaction of its own: it says so and changes nothing
      const none = await new DnfBackend({ root }).rollback(pkgs, {});
      expect(none).toMatchObject({ ok: false, error: 'no previous version known and no transaction of ours to undo' });
    }, 120_000);

    it('an option-looking package name is refused as an argument, never applied as an option (the signature check stays on)', async () => {
      const dnf = new DnfBackend({ root });
      // the control: the repository's unsigned package is refused by the signature check
      const plain = await dnf.install([{ manager: 'dnf', name: 'patchops-unsigned', version: '1.0-1' }]);
      expect(plain.ok).toBe(false);
      expect(plain.error).toMatch(/not signed/);
      // a "name" that would switch the check off if dnf read it as an option
      const res = await dnf.install([
        { manager: 'dnf', name: '--nogpgcheck' },
        { manager: 'dnf', name: 'patchops-unsigned', version: '1.0-1' },
      ]);
      expect(res.ok).toBe(false);
      expect(res.error).toMatch(/unrecognized arguments: --nogpgcheck/);
      expect((await dnf.installedVersions(['patchops-unsigned'])).get('patchops-unsigned')).toBeNull();
    }, 60_000);
  },
);
