/** winget on real console tables of three languages and on Microsoft.WinGet.Client objects (test/fixtures/agent, sources in its README). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { foundPatchSchema } from '../../shared/agent-protocol';
import type { Exec, ExecResult } from '../exec';
import { parseWingetPackages, readWingetTable, WingetBackend, WingetLanguageError, wingetToPatches } from './winget';

const fixture = (name: string) =>
  readFileSync(path.join(import.meta.dirname, '../../../test/fixtures/agent', name), 'utf8');

/** A Windows machine: powershell answers with `ps` (the module's JSON, or a failure), winget with `winget`. */
function windows(
  ps: ExecResult,
  winget: (args: readonly string[]) => ExecResult = () => ({ code: 0, stdout: '', stderr: '' }),
) {
  const calls: string[][] = [];
  const exec: Exec = async (file, args) => {
    calls.push([file, ...args]);
    return file === 'powershell.exe' ? ps : winget(args);
  };
  return { exec, calls };
}
const NO_MODULE: ExecResult = {
  code: 1,
  stdout: '',
  stderr:
    "Import-Module : The specified module 'Microsoft.WinGet.Client' was not loaded because no valid module file was found in any module directory.",
};

describe('winget console tables', () => {
  it('reads both tables of `winget upgrade` and none of its count, note or heading lines (English, winget 1.4)', () => {
    const t = readWingetTable(fixture('winget-upgrade-explicit-targeting.txt'));
    expect(t).toEqual({
      rows: [
        {
          name: 'Adobe Acrobat DC (64-bit)',
          id: 'Adobe.Acrobat.Reader.64-bit',
          version: '22.001.20142',
          available: '22.003.20310',
          source: '',
        },
        {
          name: 'Teams Machine-Wide Installer',
          id: 'Microsoft.Teams',
          version: '1.5.0.8070',
          available: '1.6.00.376',
          source: '',
        },
      ],
      truncated: [],
    });
    expect(wingetToPatches(t.rows).map((p) => p.patchId)).toEqual([
      'third-party:adobe-acrobat-reader:22.003.20310',
      'third-party:microsoft-teams:1.6.00.376',
    ]);
  });

  it('stops at the count line even when the note about unknown versions follows it at once', () => {
    expect(
      readWingetTable(fixture('winget-upgrade-unknown-note.txt')).rows.map((r) => [r.id, r.version, r.available]),
    ).toEqual([
      ['Microsoft.VisualStudio.2022.Community', '17.6.2', '17.6.3'],
      ['Microsoft.PowerShell', '7.3.2.0', '7.3.4.0'],
    ]);
  });

  it('reads a French table (Nom … Disponible), its second table, and not "101 mises a niveau disponibles."', () => {
    const rows = readWingetTable(fixture('winget-upgrade-french.txt')).rows;
    expect(rows).toEqual([
      { name: '7-Zip 25.01 (x64)', id: '7zip.7zip', version: '25.01', available: '26.01', source: 'winget' },
      {
        name: 'TreeSize Free V4.7.3 (64 bit)',
        id: 'JAMSoftware.TreeSize.Free',
        version: '< 4.8.1.610',
        available: '4.8.1.610',
        source: 'winget',
      },
      {
        name: 'Chocolatey (Install Only)',
        id: 'Chocolatey.Chocolatey',
        version: '2.6.0.0',
        available: '2.7.3.0',
        source: 'winget',
      },
    ]);
    for (const p of wingetToPatches(rows)) expect(() => foundPatchSchema.parse(p)).not.toThrow();
  });

  it('reads a German table (ID … Quelle)', () => {
    expect(readWingetTable(fixture('winget-search-german.txt')).rows.map((r) => [r.id, r.version, r.source])).toEqual([
      ['WinDirStat.WinDirStat', '2.8.0', 'winget'],
      ['WinDirStat.WinDirStat.Beta', '2.8.1.2026-08-16', 'winget'],
    ]);
  });

  it('never takes an id winget cut short with … as an id', () => {
    const t = readWingetTable(fixture('winget-list-truncated-ids.txt'));
    expect(t.truncated).toEqual([
      '8b5526fe-0870-42b7-bde0-da8c4c7ea1aa_kw…',
      'DolbyLaboratories.DolbyAccessOEM_rz1teb…',
    ]);
    expect(t.rows.map((r) => r.id)).toEqual([
      '84f93aee594a430d',
      'CodeFlow_is1',
      'Git.Git',
      'HxD_is1',
      'Microsoft.Edge',
      'Microsoft Edge Update',
    ]);
  });

  it('says so when the table is in a language it cannot read, instead of returning nothing', () => {
    // Italian column titles as the reporter of microsoft/winget-pkgs#97306 names them; the table itself is composed.
    const italian =
      'Nome       ID         Versione Disponibile Origine\n---------------------------------------------------\nZotero     Zotero.Zotero 6.0.20 6.0.22   winget\n';
    expect(() => readWingetTable(italian)).toThrow(WingetLanguageError);
    expect(() => readWingetTable(italian)).toThrow(
      'header "Nome       ID         Versione Disponibile Origine", in a language patchops does not read',
    );
    expect(readWingetTable('No installed package found matching input criteria.\n')).toEqual({
      rows: [],
      truncated: [],
    });
  });
});

describe('winget through Microsoft.WinGet.Client', () => {
  it('scans from the package objects: updates offered, pinned packages left out, no console table read', async () => {
    const w = windows({ code: 0, stdout: fixture('winget-packages.json'), stderr: '' });
    const found = await new WingetBackend(w.exec).scan();
    expect(found.map((p) => [p.patchId, p.packages[0]])).toEqual([
      ['third-party:7-zip:26.01', { manager: 'winget', name: '7zip.7zip', version: '26.01' }],
      [
        'third-party:Chocolatey.Chocolatey:2.7.3.0',
        { manager: 'winget', name: 'Chocolatey.Chocolatey', version: '2.7.3.0' },
      ],
    ]);
    expect(w.calls).toHaveLength(1);
    expect(w.calls[0]!.slice(0, 6)).toEqual([
      'powershell.exe',
      '-NoProfile',
      '-NonInteractive',
      '-ExecutionPolicy',
      'Bypass',
      '-Command',
    ]);
    expect(w.calls[0]![6]).toContain('Get-WinGetPackage');
  });

  it('reads installed versions from the objects', async () => {
    const got = await new WingetBackend(
      windows({ code: 0, stdout: fixture('winget-packages.json'), stderr: '' }).exec,
    ).installedVersions(['7zip.7zip', 'Microsoft.Edge', 'Nobody.Nothing']);
    expect(Object.fromEntries(got)).toEqual({
      '7zip.7zip': '25.01',
      'Microsoft.Edge': '142.0.3595.65',
      'Nobody.Nothing': null,
    });
  });

  it('reads one object printed alone as a list of one', () => {
    const one = JSON.stringify(JSON.parse(fixture('winget-packages.json'))[0]);
    expect(parseWingetPackages(one)).toEqual([
      {
        name: '7-Zip 25.01 (x64)',
        id: '7zip.7zip',
        version: '25.01',
        available: '26.01',
        source: 'winget',
        updatable: true,
        pinned: false,
      },
    ]);
  });

  it('falls back to the console table without the module, and names both reasons when that table cannot be read either', async () => {
    const fr = windows(NO_MODULE, () => ({ code: 0, stdout: fixture('winget-upgrade-french.txt'), stderr: '' }));
    expect((await new WingetBackend(fr.exec).scan()).map((p) => p.packages[0]!.name)).toEqual([
      '7zip.7zip',
      'JAMSoftware.TreeSize.Free',
      'Chocolatey.Chocolatey',
    ]);
    expect(fr.calls[1]).toEqual(['winget', 'upgrade', '--accept-source-agreements', '--disable-interactivity']);

    const it = windows(NO_MODULE, () => ({
      code: 0,
      stdout: 'Nome ID Versione Disponibile Origine\n--------------------------------------\n',
      stderr: '',
    }));
    await expect(new WingetBackend(it.exec).scan()).rejects.toThrow(
      /in a language patchops does not read .* \(Microsoft\.WinGet\.Client could not be used: Import-Module : The specified module 'Microsoft\.WinGet\.Client' was not loaded/,
    );
  });

  it('never reports a version for an id it only saw cut short', async () => {
    const w = windows(NO_MODULE, () => ({ code: 0, stdout: fixture('winget-list-truncated-ids.txt'), stderr: '' }));
    const got = await new WingetBackend(w.exec).installedVersions([
      'DolbyLaboratories.DolbyAccessOEM_rz1teb',
      'Git.Git',
    ]);
    expect(Object.fromEntries(got)).toEqual({
      'DolbyLaboratories.DolbyAccessOEM_rz1teb': null,
      'Git.Git': '2.31.0.0.1',
    });
    expect(w.calls[1]).toEqual([
      'winget',
      'list',
      '--id',
      'DolbyLaboratories.DolbyAccessOEM_rz1teb',
      '--exact',
      '--accept-source-agreements',
      '--disable-interactivity',
    ]);
  });
});

describe('winget install', () => {
  it('installs exactly the version asked for, the id only ever as the value of --id with --exact', async () => {
    const w = windows(NO_MODULE, () => ({ code: 0, stdout: 'Successfully installed', stderr: '' }));
    expect(
      await new WingetBackend(w.exec).install([{ manager: 'winget', name: '7zip.7zip', version: '26.01' }]),
    ).toMatchObject({ ok: true });
    expect(w.calls[0]).toEqual([
      'winget',
      'upgrade',
      '--id',
      '7zip.7zip',
      '--exact',
      '--silent',
      '--accept-package-agreements',
      '--accept-source-agreements',
      '--disable-interactivity',
      '--version',
      '26.01',
    ]);
    const bad = await new WingetBackend(w.exec).install([{ manager: 'winget', name: '--all', version: '1' }]);
    expect(bad).toMatchObject({ ok: false, error: 'refusing the winget id "--all": it starts with "-"' });
    expect(w.calls).toHaveLength(1);
  });
});
