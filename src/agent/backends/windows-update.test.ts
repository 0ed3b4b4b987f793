/**
 * Windows Update: how KB numbers reach windows-update.ps1. PowerShell does not run here, so the script's own
 * splitting is checked by reading it (see docs/agent.md); what the backend passes is checked by its command line.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Exec } from '../exec';
import { WINDOWS_UPDATE_SCRIPT, WindowsUpdateBackend } from './windows-update';

function windows(stdout = '{"ResultCode":2,"RebootRequired":true,"Updates":[]}', code = 0) {
  const calls: string[][] = [];
  const exec: Exec = async (file, args) => {
    calls.push([file, ...args]);
    return { code, stdout, stderr: '' };
  };
  return { exec, calls };
}

describe('windows update install', () => {
  it('passes several KBs as one comma-separated -KBs value, the form -File delivers as one string', async () => {
    const w = windows();
    const r = await new WindowsUpdateBackend(w.exec, 'C:\\patchops\\windows-update.ps1').install([
      { manager: 'windows-update', name: 'KB5034441' },
      { manager: 'windows-update', name: 'kb5032339' },
    ]);
    expect(r).toMatchObject({ ok: true, rebootRequired: true });
    expect(w.calls[0]).toEqual([
      'powershell.exe',
      '-NoProfile',
      '-NonInteractive',
      '-ExecutionPolicy',
      'Bypass',
      '-File',
      'C:\\patchops\\windows-update.ps1',
      '-Action',
      'Install',
      '-KBs',
      '5034441,5032339',
    ]);
  });

  it('refuses anything but a KB number before PowerShell runs (nothing can act as a parameter)', async () => {
    for (const name of ['-Action', 'KB5034441,Uninstall', 'WU-8b1a1b5c-3c5e-4b1f-a2a2-7e4b8a0d0c11', 'KB50344 41']) {
      const w = windows();
      const r = await new WindowsUpdateBackend(w.exec).install([{ manager: 'windows-update', name }]);
      expect(r).toMatchObject({
        ok: false,
        error: `"${name}" is not a KB number (KB followed by digits); Windows Update installs by KB only`,
      });
      expect(w.calls).toEqual([]);
    }
    const w = windows();
    expect(
      await new WindowsUpdateBackend(w.exec).rollback([{ manager: 'windows-update', name: '-KBs' }]),
    ).toMatchObject({ ok: false });
    expect(w.calls).toEqual([]);
  });

  it("reports the script's own refusal (a KB not applicable here) as a failure with its words", async () => {
    const w = windows(
      '{"ResultCode":0,"Error":"not applicable here (installed, hidden or unknown): KB5032339","Updates":[]}',
      2,
    );
    const r = await new WindowsUpdateBackend(w.exec).install([{ manager: 'windows-update', name: 'KB5032339' }]);
    expect(r.ok).toBe(false);
    expect(r.error).toContain('not applicable here (installed, hidden or unknown): KB5032339');
  });
});

describe('windows-update.ps1', () => {
  const script = readFileSync(WINDOWS_UPDATE_SCRIPT, 'utf8');
  it('splits the -KBs string on commas and refuses non-numbers before any action uses it', () => {
    const split = script.indexOf("$KBs = @($KBs | ForEach-Object { $_ -split ',' }");
    expect(split).toBeGreaterThan(0);
    expect(script.indexOf('if ($notKb.Count -gt 0)')).toBeGreaterThan(split);
    for (const action of ["if ($Action -eq 'Install')", "if ($Action -eq 'Uninstall')"])
      expect(script.indexOf(action)).toBeGreaterThan(split);
  });

  it('refuses an install when any KB asked for is not applicable, instead of installing the rest', () => {
    expect(script).toContain('$missing = @($KBs | Where-Object { $found -notcontains $_ })');
    expect(script.indexOf('$missing.Count -gt 0')).toBeLessThan(script.indexOf('$session.CreateUpdateDownloader()'));
  });
});
