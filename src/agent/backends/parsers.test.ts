/** Every parser on real output of its tool (test/fixtures/agent, sources in its README). dnf, yum and zypper: rpm-parsers.test.ts. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { foundPatchSchema } from '../../shared/agent-protocol';
import { productForPackage } from '../catalog';
import type { Exec } from '../exec';
import { AptBackend, aptUpgradeToPatch, parseAptSimulation } from './apt';
import { brewToPatches, parseBrewOutdated } from './brew';
import { parseSoftwareUpdateList, softwareUpdateToPatches } from './softwareupdate';
import { parseWuaSearch, WindowsUpdateBackend, wuaToPatches } from './windows-update';
import { parseWingetTable, WingetBackend, wingetToPatches } from './winget';

const fixture = (name: string) =>
  readFileSync(path.join(import.meta.dirname, '../../../test/fixtures/agent', name), 'utf8');

describe('apt', () => {
  it('reads the Inst line of a real Ubuntu 20.04 simulation (two origins, one of them -security)', () => {
    const ups = parseAptSimulation(fixture('apt-get-s-upgrade-ubuntu.txt'));
    expect(ups).toEqual([
      {
        name: 'firefox-locale-en',
        current: '75.0+build3-0ubuntu1',
        candidate: '136.0+build3-0ubuntu0.20.04.1',
        origins: ['Ubuntu:20.04/focal-updates', 'Ubuntu:20.04/focal-security'],
        arch: 'amd64',
        security: true,
      },
    ]);
    const p = aptUpgradeToPatch(ups[0]!);
    expect(p).toMatchObject({
      patchId: 'apt:firefox-locale-en:136.0+build3-0ubuntu0.20.04.1',
      vendor: 'Ubuntu',
      type: 'security',
      severitySource: 'ubuntu',
      rebootRequired: false,
    });
    expect(() => foundPatchSchema.parse(p)).not.toThrow();
  });

  it('reads a real Ubuntu 22.04 dist-upgrade: trailing [] markers, :i386 instances, new packages, Remv lines skipped', () => {
    const ups = parseAptSimulation(fixture('apt-s-dist-upgrade-ubuntu-22.04.txt'));
    expect(ups).toHaveLength(27);
    expect(ups.filter((u) => u.security).map((u) => u.name)).toEqual([
      'linux-modules-nvidia-525-generic-hwe-22.04',
      'linux-modules-nvidia-525-5.19.0-35-generic',
    ]);
    expect(ups.find((u) => u.name === 'libnvidia-gl-525')).toMatchObject({
      current: '525.78.01-0ubuntu0.22.04.1',
      candidate: '525.85.05-0ubuntu0.22.04.1',
      arch: 'amd64',
      origins: ['Ubuntu:22.04/jammy-updates'],
    });
    expect(ups.find((u) => u.name === 'libnvidia-gl-525:i386')).toMatchObject({
      arch: 'i386',
      candidate: '525.85.05-0ubuntu0.22.04.1',
    });
    expect(ups.find((u) => u.name === 'linux-modules-nvidia-525-5.19.0-35-generic')).toMatchObject({
      current: null,
      candidate: '5.19.0-35.36~22.04.1',
    });
    expect(ups.some((u) => u.name === 'linux-modules-nvidia-525-5.19.0-32-generic')).toBe(false);
    expect(ups.find((u) => u.name === 'fonts-opensymbol')).toMatchObject({
      current: '2:102.12+LibO7.3.7-0ubuntu0.22.04.1',
      candidate: '2:102.12+LibO7.3.7-0ubuntu0.22.04.2',
      arch: 'all',
    });

    const patches = ups.map(aptUpgradeToPatch);
    for (const p of patches) expect(() => foundPatchSchema.parse(p)).not.toThrow();
    expect(patches.find((p) => p.product === 'tcpdump')).toMatchObject({
      patchId: 'apt:tcpdump:4.99.1-3ubuntu0.1',
      type: 'update',
      vendor: 'Ubuntu',
      rebootRequired: false,
    });
    expect(patches.find((p) => p.product === 'linux-modules-nvidia-525-generic-hwe-22.04')).toMatchObject({
      type: 'security',
      rebootRequired: true,
    });
    expect(new Set(patches.map((p) => p.patchId)).size).toBe(patches.length);
  });

  it('tells the :i386 instance of a multiarch package from the native one when reading installed versions', async () => {
    const calls: string[][] = [];
    const exec: Exec = async (file, args) => {
      calls.push([file, ...args]);
      if (file === 'dpkg') return { code: 0, stdout: 'amd64\n', stderr: '' };
      const stdout = [
        'libnvidia-gl-525\tamd64\tinstall ok installed\t525.78.01-0ubuntu0.22.04.1',
        'libnvidia-gl-525\ti386\tinstall ok installed\t525.78.01-0ubuntu0.22.04.0',
        'tcpdump\tamd64\tinstall ok installed\t4.99.1-3build2',
        'libnvidia-extra-525\tamd64\tdeinstall ok config-files\t525.78.01-0ubuntu0.22.04.1',
        '',
      ].join('\n');
      return { code: 0, stdout, stderr: '' };
    };
    const got = await new AptBackend({ exec }).installedVersions([
      'libnvidia-gl-525',
      'libnvidia-gl-525:i386',
      'tcpdump',
      'libnvidia-extra-525',
    ]);
    expect(Object.fromEntries(got)).toEqual({
      'libnvidia-gl-525': '525.78.01-0ubuntu0.22.04.1',
      'libnvidia-gl-525:i386': '525.78.01-0ubuntu0.22.04.0',
      tcpdump: '4.99.1-3build2',
      'libnvidia-extra-525': null,
    });
    expect(calls[0]).toEqual(expect.arrayContaining(['dpkg-query', '-W', 'libnvidia-gl-525:i386']));
  });
});

describe('winget', () => {
  it('reads the fixed-width upgrade table, names with spaces included, duplicates dropped', () => {
    const rows = parseWingetTable(fixture('winget-upgrade.txt'));
    expect(rows).toHaveLength(6);
    expect(rows[3]).toEqual({
      name: 'Microsoft 365 Apps for enterprise',
      id: 'Microsoft.Office',
      version: '16.0.14701.20290',
      available: '16.0.14729.20228',
      source: 'winget',
    });
    const patches = wingetToPatches(rows);
    expect(patches).toHaveLength(5);
    expect(patches[1]).toMatchObject({
      patchId: 'third-party:microsoft-edge:97.0.1072.69',
      vendor: 'Microsoft',
      packages: [{ manager: 'winget', name: 'Microsoft.Edge', version: '97.0.1072.69' }],
    });
  });

  it('installs exactly the version asked for', async () => {
    const calls: string[][] = [];
    const exec: Exec = async (file, args) => {
      calls.push([file, ...args]);
      return { code: 0, stdout: 'Successfully installed', stderr: '' };
    };
    const r = await new WingetBackend(exec).install([{ manager: 'winget', name: 'Signal', version: '5.29.0' }]);
    expect(r.ok).toBe(true);
    expect(calls[0]).toEqual(
      expect.arrayContaining(['winget', 'upgrade', '--id', 'Signal', '--exact', '--version', '5.29.0']),
    );
  });
});

describe('softwareupdate', () => {
  it('reads labels, recommended and restart', () => {
    const items = parseSoftwareUpdateList(fixture('softwareupdate-list.txt'));
    expect(items).toEqual([
      {
        label: 'Safari18.3.1VenturaAuto-18.3.1',
        title: 'Safari',
        version: '18.3.1',
        recommended: true,
        restart: false,
      },
      {
        label: 'macOS Ventura 13.7.4-22H420',
        title: 'macOS Ventura 13.7.4',
        version: '13.7.4',
        recommended: true,
        restart: true,
      },
      {
        label: 'macOS Sequoia 15.3.1-24D70',
        title: 'macOS Sequoia 15.3.1',
        version: '15.3.1',
        recommended: true,
        restart: true,
      },
    ]);
    expect(softwareUpdateToPatches(items, '13.7.3')[1]).toMatchObject({
      patchId: 'apple:macOS Ventura 13.7.4-22H420',
      rebootRequired: true,
      type: 'security',
    });
  });
});

describe('brew', () => {
  it('reads real formula output (installed_versions a list)', () => {
    const list = parseBrewOutdated(fixture('brew-outdated-v2.json'));
    expect(list.map((e) => [e.kind, e.name, e.installed_versions, e.current_version])).toEqual([
      ['formula', 'pygobject3', ['3.36.1'], '3.38.0'],
      ['formula', 'rav1e', ['0.3.3'], '0.3.4'],
    ]);
    const patches = brewToPatches(list);
    expect(patches.map((p) => p.patchId)).toEqual([
      'third-party:brew-pygobject3:3.38.0',
      'third-party:brew-rav1e:0.3.4',
    ]);
    expect(patches[0]).toMatchObject({
      title: 'pygobject3 3.36.1 → 3.38.0',
      vendor: 'Homebrew',
      product: 'pygobject3',
      packages: [{ manager: 'brew', name: 'pygobject3', version: '3.38.0' }],
    });
    for (const p of patches) expect(() => foundPatchSchema.parse(p)).not.toThrow();
  });

  it('skips pinned formulae', () => {
    const list = parseBrewOutdated(fixture('brew-outdated-v2.json'));
    list[0]!.pinned = true;
    expect(brewToPatches(list).map((p) => p.product)).toEqual(['rav1e']);
  });

  it('reads real cask output of Homebrew before 4.1 (installed_versions a string) and skips latest → latest', () => {
    const list = parseBrewOutdated(fixture('brew-outdated-v2-greedy-cask.json'));
    expect(list.find((e) => e.name === 'electrum')).toMatchObject({
      kind: 'cask',
      installed_versions: ['4.0.2'],
      current_version: '4.0.3',
    });
    const patches = brewToPatches(list);
    expect(patches.map((p) => p.packages[0])).toEqual([
      { manager: 'brew', name: 'cask:amethyst', version: '0.15.3' },
      { manager: 'brew', name: 'cask:balenaetcher', version: '1.5.108' },
      { manager: 'brew', name: 'cask:electrum', version: '4.0.3' },
      { manager: 'brew', name: 'cask:qlcolorcode', version: '3.1.1' },
    ]);
    expect(patches[2]!.title).toBe('electrum 4.0.2 → 4.0.3');
  });

  it('splits a cask string naming several installed versions', () => {
    // the form meta-package-manager recorded for lg-onscreen-control (see the fixtures README)
    const [e] = parseBrewOutdated(
      '{"formulae":[],"casks":[{"name":"lg-onscreen-control","installed_versions":"5.33,cV8xqv5TSZA.upgrading, 5.47,yi5XuIZw6hg","current_version":"5.48,uYXSwyUCNFBbSch9PFw"}]}',
    );
    expect(e!.installed_versions).toEqual(['5.33,cV8xqv5TSZA.upgrading', '5.47,yi5XuIZw6hg']);
  });
});

describe('windows update', () => {
  it('maps WUA classification, MSRC severity, CVEs and reboot (real KB numbers, titles and values; see the README)', () => {
    const patches = wuaToPatches(parseWuaSearch(fixture('windows-update-search.json')));
    expect(patches.map((p) => [p.patchId, p.type, p.vendorSeverity, p.rebootRequired, p.product])).toEqual([
      ['KB5032339', 'security', 'Important', true, 'Windows'],
      ['KB4535680', 'security', undefined, true, 'Windows Server 2019'],
      ['KB4512495', 'update', undefined, true, 'Windows Server 2016'],
      ['KB2267602', 'definition', undefined, false, 'Windows Defender'],
      ['KB4577586', 'update', undefined, true, 'Windows Server 2019'],
    ]);
    expect(patches[1]!.cves).toEqual(['CVE-2020-0689']);
    expect(patches[0]!.releasedAt).toBe('2023-11-14T00:00:00Z');
    expect(patches[3]!.title).toBe(
      'Security Intelligence Update for Windows Defender Antivirus - KB2267602 (Version 1.299.2334.0)',
    );
    for (const p of patches) expect(() => foundPatchSchema.parse(p)).not.toThrow();
  });

  it('runs its PowerShell script for a search and reads the JSON it prints', async () => {
    const calls: string[][] = [];
    const exec: Exec = async (file, args) => {
      calls.push([file, ...args]);
      return { code: 0, stdout: fixture('windows-update-search.json'), stderr: '' };
    };
    const found = await new WindowsUpdateBackend(exec, 'C:\\patchops\\windows-update.ps1').scan();
    expect(found.map((p) => p.patchId)).toEqual(['KB5032339', 'KB4535680', 'KB4512495', 'KB2267602', 'KB4577586']);
    expect(calls[0]).toEqual([
      'powershell.exe',
      '-NoProfile',
      '-NonInteractive',
      '-ExecutionPolicy',
      'Bypass',
      '-File',
      'C:\\patchops\\windows-update.ps1',
      '-Action',
      'Search',
    ]);
  });
});

describe('third-party catalog', () => {
  it.each([
    ['winget', 'Google.Chrome', 'google-chrome'],
    ['brew', 'google-chrome', 'google-chrome'],
    ['winget', '7zip.7zip', '7-zip'],
    ['winget', 'Adobe.Acrobat.Reader.64-bit', 'adobe-acrobat-reader'],
    ['brew', 'visual-studio-code', 'vscode'],
    ['winget', 'Zoom.Zoom', 'zoom'],
  ])('%s %s → %s', (manager, id, key) => {
    expect(productForPackage(manager, id)?.key).toBe(key);
  });
  it('knows nothing of unknown ids', () => {
    expect(productForPackage('winget', 'Nobody.Nothing')).toBeUndefined();
  });
});
