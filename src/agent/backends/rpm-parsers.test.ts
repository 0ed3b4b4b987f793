/**
 * dnf, yum and zypper parsers on output captured from public sources (test/fixtures/agent, sources in its
 * README): the tools that do not run here (dnf 5, yum 3, openEuler's plugin). The output of the dnf 4 and zypper
 * that run here is produced by running them, in dnf.integration.test.ts and zypper.integration.test.ts.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { foundPatchSchema } from '../../shared/agent-protocol';
import type { Exec } from '../exec';
import { DnfBackend, parseCheckUpdate, parseDnf5AdvisoryList, parseUpdateInfoList, toPatches } from './dnf';
import { normalizeEvr, parseNevra } from './rpm';

const fixture = (name: string) =>
  readFileSync(path.join(import.meta.dirname, '../../../test/fixtures/agent', name), 'utf8');

describe('rpm NEVRA', () => {
  it.each([
    [
      'openssl-libs-1:3.0.7-25.el9_3.x86_64',
      {
        name: 'openssl-libs',
        epoch: '1',
        version: '3.0.7',
        release: '25.el9_3',
        arch: 'x86_64',
        evr: '1:3.0.7-25.el9_3',
      },
    ],
    [
      'bind-libs-9.16.23-10.oe2203.aarch64',
      {
        name: 'bind-libs',
        epoch: '',
        version: '9.16.23',
        release: '10.oe2203',
        arch: 'aarch64',
        evr: '9.16.23-10.oe2203',
      },
    ],
    [
      '389-ds-base-libs-1.3.1.6-26.el7_0.x86_64',
      {
        name: '389-ds-base-libs',
        epoch: '',
        version: '1.3.1.6',
        release: '26.el7_0',
        arch: 'x86_64',
        evr: '1.3.1.6-26.el7_0',
      },
    ],
    [
      'tzdata-0:2024a-1.el9.noarch',
      { name: 'tzdata', epoch: '', version: '2024a', release: '1.el9', arch: 'noarch', evr: '2024a-1.el9' },
    ],
  ])('splits %s keeping the epoch in the EVR (epoch 0 left out, as dnf and rpm print it)', (nevra, want) => {
    expect(parseNevra(nevra)).toEqual(want);
  });

  it('refuses what is not a NEVRA', () => {
    for (const s of ['Moderate', 'flac', 'a-1.x86_64', 'x-a:1-2.noarch', '']) expect(parseNevra(s)).toBeNull();
    expect(normalizeEvr('0:1.2-3')).toBe('1.2-3');
    expect(normalizeEvr('2:1.2-3')).toBe('2:1.2-3');
  });
});

describe('yum / dnf 4 updateinfo on captured output', () => {
  it('reads yum 3 on RHEL 7 (plugin banner, leading spaces): advisories with severity, the versions of each advisory grouped', () => {
    const lines = parseUpdateInfoList(fixture('yum-updateinfo-list.txt'));
    expect(lines).toHaveLength(13);
    expect(lines[4]).toMatchObject({
      id: 'RHSA-2016:2594',
      type: 'security',
      severity: 'Moderate',
      pkg: { name: '389-ds-base', evr: '1.3.5.10-11.el7' },
    });
    const patches = toPatches(lines, [], []);
    expect(patches).toHaveLength(12);
    const a = patches.find((p) => p.patchId === 'RHSA-2014:1031')!;
    expect(a).toMatchObject({ type: 'security', vendorSeverity: 'Important', severitySource: 'redhat' });
    expect(a.packages).toEqual([
      { manager: 'dnf', name: '389-ds-base', version: '1.3.1.6-26.el7_0' },
      { manager: 'dnf', name: '389-ds-base-libs', version: '1.3.1.6-26.el7_0' },
    ]);
    for (const p of patches) expect(() => foundPatchSchema.parse(p)).not.toThrow();
  });

  it("reads a CVE listing alone (openEuler's hot-updateinfo, a fourth column): each CVE a patch of its package", () => {
    const lines = parseUpdateInfoList(fixture('dnf-updateinfo-list-cves.txt'));
    expect(lines.map((l) => [l.id, l.severity])).toEqual([
      ['CVE-2022-3080', 'Important'],
      ['CVE-2021-25220', 'Moderate'],
      ['CVE-2022-1886', 'Critical'],
      ['CVE-2022-1725', 'Low'],
    ]);
    const patches = toPatches([], lines, [], 'dnf', 'openEuler');
    expect(patches.find((p) => p.cves.includes('CVE-2022-1886'))).toMatchObject({
      patchId: 'rpm:vim-common:8.2-39.oe2203',
      vendorSeverity: 'Critical',
      type: 'security',
      packages: [{ manager: 'dnf', name: 'vim-common', version: '8.2-39.oe2203' }],
    });
  });

  it('check-update stops at the obsoletes list and keeps the epoch', () => {
    // dnf 4's check-update layout (name.arch, EVR, repository) as dnf.integration.test.ts captures it here;
    // the Obsoleting Packages section's lines are composed in the same layout (not captured).
    const text = [
      '',
      'patchops-demo.noarch                    1:2.0-1                    patchops-test',
      'Obsoleting Packages',
      'new-thing.noarch   1.0-1   patchops-test',
      '    old-thing.noarch  0.9-1  @System',
      '',
    ].join('\n');
    expect(parseCheckUpdate(text)).toEqual([
      { name: 'patchops-demo', arch: 'noarch', evr: '1:2.0-1', repo: 'patchops-test' },
    ]);
  });
});

describe('dnf 5 advisory list on captured output', () => {
  it('reads the full-width table into the right columns (the dnf 4 parser read "Moderate" as the package)', () => {
    const lines = parseDnf5AdvisoryList(fixture('dnf5-advisory-list.txt'));
    expect(lines.map((l) => [l.id, l.type, l.severity, l.pkg.name, l.pkg.evr])).toEqual([
      ['FEDORA-2018-318f184112', 'enhancement', 'Moderate', 'flac', '1.4.0-1.fc29'],
      ['FEDORA-2999:002-02', 'enhancement', 'Moderate', 'flac', '1.3.3-8.fc29'],
    ]);
    expect(parseUpdateInfoList(fixture('dnf5-advisory-list.txt'))).toEqual([]);
  });

  it('reads the table a narrow terminal truncates (secu, Importan, unsp), the progress lines before it ignored', () => {
    const lines = parseDnf5AdvisoryList(fixture('dnf5-advisory-list-narrow.txt'));
    expect(lines).toHaveLength(9);
    expect(lines.map((l) => [l.type, l.severity])).toEqual([
      ['enhancement', ''],
      ['enhancement', ''],
      ['enhancement', ''],
      ['bugfix', 'Moderate'],
      ['bugfix', 'Moderate'],
      ['bugfix', 'Moderate'],
      ['security', 'Important'],
      ['security', 'Important'],
      ['unspecified', ''],
    ]);
    const patches = toPatches(lines, [], []);
    expect(patches.map((p) => [p.patchId, p.type, p.vendorSeverity ?? null, p.packages.length])).toEqual([
      ['FEDORA-2024-1e8a70c30e', 'feature', null, 3],
      ['FEDORA-2024-27b58399dc', 'bug_fix', 'Moderate', 3],
      ['FEDORA-2024-635a54eb7e', 'security', 'Important', 2],
      ['FEDORA-2024-fbfda3f679', 'update', null, 1],
    ]);
  });

  it('attaches the CVEs of a --with-cve table to the advisory of the same package', () => {
    // Composed: header and columns as libdnf5-cli/output/advisorylist.cpp prints them for --with-cve (the
    // first column named "CVE"); the row's CVE id is ours, its other cells are the captured glib2 row.
    const cves = parseDnf5AdvisoryList(
      [
        'CVE                    Type Severity                                Package              Issued',
        'CVE-2024-34397 secu Importan   glib2-debuginfo-2.80.2-1.fc40.x86_64 2024-05-12 04:16:43',
      ].join('\n'),
    );
    const patches = toPatches(parseDnf5AdvisoryList(fixture('dnf5-advisory-list-narrow.txt')), cves, []);
    expect(patches.find((p) => p.patchId === 'FEDORA-2024-635a54eb7e')!.cves).toEqual(['CVE-2024-34397']);
    expect(patches.filter((p) => p.cves.length > 0)).toHaveLength(1);
  });
});

describe('DnfBackend on dnf 5 (its captured output served by a fake exec)', () => {
  it('knows dnf 5 by its --version line and asks it for advisory list and check-upgrade', async () => {
    const calls: string[][] = [];
    const exec: Exec = async (file, args) => {
      calls.push([file, ...args]);
      const a = args.join(' ');
      // dnf5/main.cpp print_versions: "{} version {}.{}.{}.{}" with "dnf5", then the plugin API line
      if (a === '--version')
        return { code: 0, stdout: 'dnf5 version 5.2.18.0\ndnf5 plugin API version 2.0\n', stderr: '' };
      if (a === '--refresh advisory list --available')
        return { code: 0, stdout: fixture('dnf5-advisory-list-narrow.txt'), stderr: '' };
      if (a === 'advisory list --available --with-cve') return { code: 0, stdout: '', stderr: '' };
      if (a === 'check-upgrade') return { code: 0, stdout: '', stderr: '' };
      return { code: 2, stdout: '', stderr: `unexpected: ${a}` };
    };
    const patches = await new DnfBackend({ exec }).scan();
    expect(calls.map((c) => c.slice(1).join(' '))).toEqual([
      '--version',
      '--refresh advisory list --available',
      'advisory list --available --with-cve',
      'check-upgrade',
    ]);
    expect(patches.map((p) => p.patchId)).toEqual([
      'FEDORA-2024-1e8a70c30e',
      'FEDORA-2024-27b58399dc',
      'FEDORA-2024-635a54eb7e',
      'FEDORA-2024-fbfda3f679',
    ]);
  });

  it('a failing listing fails the scan with what dnf said (the message is ours)', async () => {
    const exec: Exec = async (_file, args) =>
      args[0] === '--version'
        ? { code: 0, stdout: '4.14.0\n', stderr: '' }
        : { code: 1, stdout: '', stderr: 'Error: Failed to download metadata for repo' };
    await expect(new DnfBackend({ exec }).scan()).rejects.toThrow(
      /-q updateinfo list --available failed \(1\): Error: Failed to download metadata for repo/,
    );
  });
});
