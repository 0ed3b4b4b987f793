import { describe, expect, it } from 'vitest';
import type { Exec } from './exec';
import { createBackends } from './backends/index';
import { availableBackends } from './platform';

/** A machine where `command -v` finds exactly `present`. */
const machine =
  (present: string[]): Exec =>
  async (file, args) => {
    const name = file === 'sh' ? /command -v (\S+)/.exec(args[1] ?? '')?.[1] : args[0];
    return present.includes(name ?? '')
      ? { code: 0, stdout: `/usr/bin/${name}\n`, stderr: '' }
      : { code: 1, stdout: '', stderr: '' };
  };

describe('availableBackends', () => {
  it('adds fwupd beside the package manager on Linux when fwupdmgr is there', async () => {
    expect(await availableBackends({ osFamily: 'linux' }, machine(['apt-get', 'fwupdmgr']), 'linux')).toEqual([
      'apt',
      'fwupd',
    ]);
    expect(await availableBackends({ osFamily: 'linux' }, machine(['dnf']), 'linux')).toEqual(['dnf']);
    expect(await availableBackends({ osFamily: 'linux' }, machine(['fwupdmgr']), 'linux')).toEqual(['fwupd']);
  });

  it('never asks for fwupd on Windows or macOS', async () => {
    expect(await availableBackends({ osFamily: 'windows' }, machine(['winget', 'fwupdmgr']), 'win32')).toEqual([
      'windows-update',
      'winget',
    ]);
    expect(await availableBackends({ osFamily: 'macos' }, machine(['brew', 'fwupdmgr']), 'darwin')).toEqual([
      'softwareupdate',
      'brew',
    ]);
  });
});

describe('createBackends', () => {
  it('builds the fwupd backend under its manager name', () => {
    expect(createBackends(['apt', 'fwupd']).get('fwupd')?.name).toBe('fwupd');
  });
});
