/** Homebrew install against real `brew outdated --json=v2` output (test/fixtures/agent, sources in its README). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Exec } from '../exec';
import { BrewBackend } from './brew';

const fixture = (name: string) =>
  readFileSync(path.join(import.meta.dirname, '../../../test/fixtures/agent', name), 'utf8');

/** A Mac whose `brew outdated --json=v2` prints `outdated` and `brew list --versions` prints `list`. */
function mac(outdated: string, list = '') {
  const calls: string[][] = [];
  const exec: Exec = async (file, args) => {
    calls.push([file, ...args]);
    if (args[0] === 'outdated') return { code: 0, stdout: outdated, stderr: '' };
    if (args[0] === 'list') return { code: 0, stdout: list, stderr: '' };
    return { code: 0, stdout: '==> Upgrading 1 outdated package:\n', stderr: '' };
  };
  return { exec, calls };
}

describe('brew install', () => {
  it('upgrades when Homebrew offers exactly the version asked for, names after --', async () => {
    const m = mac(fixture('brew-outdated-v2.json'));
    const r = await new BrewBackend(m.exec).install([{ manager: 'brew', name: 'rav1e', version: '0.3.4' }]);
    expect(r.ok).toBe(true);
    expect(m.calls.at(-1)).toEqual(['brew', 'upgrade', '--formula', '--', 'rav1e']);
  });

  it('refuses, before running anything, when Homebrew offers another version than the one approved', async () => {
    const m = mac(fixture('brew-outdated-v2.json'));
    const r = await new BrewBackend(m.exec).install([
      { manager: 'brew', name: 'rav1e', version: '0.3.4' },
      { manager: 'brew', name: 'pygobject3', version: '3.37.0' },
    ]);
    expect(r).toMatchObject({
      ok: false,
      error:
        'Homebrew now offers pygobject3 3.38.0, not the 3.37.0 that was approved, and cannot install another version; rescan and approve 3.38.0',
    });
    expect(m.calls.some((c) => c[1] === 'upgrade')).toBe(false);
  });

  it('counts a package already at the version asked for as done, and refuses one not offered at all', async () => {
    const done = mac('{"formulae":[],"casks":[]}', 'rav1e 0.3.4\n');
    expect(
      await new BrewBackend(done.exec).install([{ manager: 'brew', name: 'rav1e', version: '0.3.4' }]),
    ).toMatchObject({ ok: true });
    expect(done.calls.some((c) => c[1] === 'upgrade')).toBe(false);
    expect(done.calls.find((c) => c[1] === 'list')).toEqual(['brew', 'list', '--versions', '--', 'rav1e']);

    const gone = mac('{"formulae":[],"casks":[]}', 'rav1e 0.3.3\n');
    expect(
      await new BrewBackend(gone.exec).install([{ manager: 'brew', name: 'rav1e', version: '0.3.4' }]),
    ).toMatchObject({
      ok: false,
      error: 'Homebrew offers no upgrade of rav1e to 0.3.4 (installed: 0.3.3); rescan this endpoint',
    });
  });

  it('checks casks by their cask: name against real pre-4.1 cask output', async () => {
    const m = mac(fixture('brew-outdated-v2-greedy-cask.json'));
    expect(
      await new BrewBackend(m.exec).install([{ manager: 'brew', name: 'cask:electrum', version: '4.0.3' }]),
    ).toMatchObject({ ok: true });
    expect(m.calls.at(-1)).toEqual(['brew', 'upgrade', '--cask', '--', 'electrum']);
    expect(
      await new BrewBackend(m.exec).install([{ manager: 'brew', name: 'cask:electrum', version: '4.0.2' }]),
    ).toMatchObject({ ok: false });
  });
});
