/** softwareupdate on real `--list` output of three eras (test/fixtures/agent, sources in its README). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { foundPatchSchema } from '../../shared/agent-protocol';
import type { Exec } from '../exec';
import { RecordingRebooter } from '../reboot';
import { JobRunner } from '../runner';
import type { AgentState } from '../state';
import { parseSoftwareUpdateList, SoftwareUpdateBackend, softwareUpdateToPatches } from './softwareupdate';

const fixture = (name: string) =>
  readFileSync(path.join(import.meta.dirname, '../../../test/fixtures/agent', name), 'utf8');

/** A Mac whose `softwareupdate --list` prints `list` (exit 0) and whose sw_vers says `os`. */
function mac(state: { list: string; os: string; safari?: string }): { exec: Exec; calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    exec: async (file, args) => {
      calls.push([file, ...args]);
      if (file === 'sw_vers')
        return {
          code: 0,
          stdout: `ProductName:\t\tmacOS\nProductVersion:\t\t${state.os}\nBuildVersion:\t\t22H417\n`,
          stderr: '',
        };
      if (file === 'defaults')
        return state.safari
          ? { code: 0, stdout: `${state.safari}\n`, stderr: '' }
          : { code: 1, stdout: '', stderr: 'does not exist' };
      if (file === 'softwareupdate' && args[0] === '--list') return { code: 0, stdout: state.list, stderr: '' };
      return { code: 0, stdout: 'Installing...\nDone.\n', stderr: '' };
    },
  };
}

function runner(backend: SoftwareUpdateBackend) {
  const state: AgentState = {
    serverUrl: 'x',
    endpointId: 'e',
    nodeKey: 'k',
    manifestSigningKey: '',
    machineId: 'm',
    lastManifestVersion: 0,
    previousVersions: {},
  };
  return new JobRunner({
    backends: new Map([['softwareupdate', backend]]),
    getState: () => state,
    updateState: async () => undefined,
    rebooter: new RecordingRebooter(),
    fetchManifest: () => Promise.reject(new Error('none')),
    sources: () => [],
    downloadDir: '/nonexistent',
    log: pino({ level: 'silent' }),
  });
}

describe('softwareupdate --list formats', () => {
  it('reads the macOS 13 format (Label/Title lines)', () => {
    expect(parseSoftwareUpdateList(fixture('softwareupdate-list.txt'))).toEqual([
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
  });

  it('reads the macOS 10.14 format ("* label" then "title (version), size [recommended] [restart]"), shut down counting as a restart', () => {
    expect(parseSoftwareUpdateList(fixture('softwareupdate-list-mojave.txt'))).toEqual([
      {
        label: 'Command Line Tools (macOS Mojave version 10.14) for Xcode-10.3',
        title: 'Command Line Tools (macOS Mojave version 10.14) for Xcode',
        version: '10.3',
        recommended: true,
        restart: false,
      },
      {
        label: 'macOS 10.14.1 Update',
        title: 'macOS 10.14.1 Update',
        version: '10.14.1',
        recommended: true,
        restart: true,
      },
      {
        label: 'BridgeOSUpdateCustomer',
        title: 'BridgeOSUpdateCustomer',
        version: '10.14.4.1.1.1555388607',
        recommended: true,
        restart: true,
      },
      { label: 'iCal-1.0.2', title: 'iCal', version: '1.0.2', recommended: false, restart: false },
    ]);
  });

  it('reads the example of Apple\'s softwareupdate(8) man page ("title, version, size")', () => {
    expect(
      parseSoftwareUpdateList(fixture('softwareupdate-list-manpage.txt')).map((u) => [
        u.label,
        u.title,
        u.version,
        u.recommended,
        u.restart,
      ]),
    ).toEqual([
      ['iPhoto-2.0', 'iPhoto', '2.0', true, false],
      ['iSync-1.0', 'iSync', '1.0', true, false],
      ['StuffItExpander7-7.0', 'StuffIt Expander Security Update', '7.0', true, false],
      ['iCal-1.0.2', 'iCal', '1.0.2', false, false],
      ['AirPortSW-4.1', 'AirPort Software', '4.1', true, true],
    ]);
  });

  it('reads "No new software available." as nothing', () => {
    expect(
      parseSoftwareUpdateList('Software Update Tool\n\nFinding available software\nNo new software available.\n'),
    ).toEqual([]);
  });
});

describe('softwareupdate types', () => {
  it('types a macOS of another major version as an upgrade (feature), a point release of the running one as security, Safari as an update', () => {
    const patches = softwareUpdateToPatches(parseSoftwareUpdateList(fixture('softwareupdate-list.txt')), '13.7.3');
    expect(patches.map((p) => [p.patchId, p.type, p.rebootRequired])).toEqual([
      ['apple:Safari18.3.1VenturaAuto-18.3.1', 'update', false],
      ['apple:macOS Ventura 13.7.4-22H420', 'security', true],
      ['apple:macOS Sequoia 15.3.1-24D70', 'feature', true],
    ]);
    for (const p of patches) expect(() => foundPatchSchema.parse(p)).not.toThrow();
  });

  it('types the old formats: tools, macOS 10.14 point release, security update by its title, others as updates', () => {
    const mojave = softwareUpdateToPatches(
      parseSoftwareUpdateList(fixture('softwareupdate-list-mojave.txt')),
      '10.14.0',
    );
    expect(mojave.map((p) => p.type)).toEqual(['tool', 'security', 'update', 'update']);
    expect(
      softwareUpdateToPatches(parseSoftwareUpdateList(fixture('softwareupdate-list-mojave.txt')), '10.13.6')[1]!.type,
    ).toBe('feature');
    const manpage = softwareUpdateToPatches(
      parseSoftwareUpdateList(fixture('softwareupdate-list-manpage.txt')),
      '10.3.9',
    );
    expect(manpage.map((p) => p.type)).toEqual(['update', 'update', 'security', 'update', 'update']);
  });
});

describe('softwareupdate installed versions', () => {
  const safariAndVentura = fixture('softwareupdate-list.txt');
  // The same output without the Safari and Ventura items (lines 5–8 of the capture).
  const onlySequoia = safariAndVentura
    .split('\n')
    .filter((_l, i) => i < 4 || i > 7)
    .join('\n');

  it('reports real versions (sw_vers, Safari bundle), so verify passes after an install instead of failing on the word "installed"', async () => {
    const m = mac({ list: onlySequoia, os: '13.7.4', safari: '18.3.1' });
    const b = new SoftwareUpdateBackend(m.exec);
    const got = await b.installedVersions([
      'macOS Ventura 13.7.4-22H420',
      'Safari18.3.1VenturaAuto-18.3.1',
      'macOS Sequoia 15.3.1-24D70',
    ]);
    expect(Object.fromEntries(got)).toEqual({
      'macOS Ventura 13.7.4-22H420': '13.7.4',
      'Safari18.3.1VenturaAuto-18.3.1': '18.3.1',
      'macOS Sequoia 15.3.1-24D70': null,
    });
    const verify = await runner(b).verify({
      patches: [
        {
          patchId: 'apple:macOS Ventura 13.7.4-22H420',
          packages: [{ manager: 'softwareupdate', name: 'macOS Ventura 13.7.4-22H420', version: '13.7.4' }],
          rebootRequired: true,
        },
        {
          patchId: 'apple:Safari18.3.1VenturaAuto-18.3.1',
          packages: [{ manager: 'softwareupdate', name: 'Safari18.3.1VenturaAuto-18.3.1', version: '18.3.1' }],
          rebootRequired: false,
        },
      ],
    });
    expect(verify).toMatchObject({ status: 'succeeded', patches: [{ state: 'installed' }, { state: 'installed' }] });
  });

  it('reports an update still offered as not installed, and a macOS still on the old version as missing', async () => {
    const b = new SoftwareUpdateBackend(mac({ list: safariAndVentura, os: '13.7.3' }).exec);
    const verify = await runner(b).verify({
      patches: [
        {
          patchId: 'x',
          packages: [{ manager: 'softwareupdate', name: 'macOS Ventura 13.7.4-22H420', version: '13.7.4' }],
          rebootRequired: true,
        },
      ],
    });
    expect(verify.patches[0]).toMatchObject({
      state: 'missing',
      error: 'macOS Ventura 13.7.4-22H420 is at nothing, expected 13.7.4',
    });
  });

  it('counts a macOS update this agent installed and that waits for its restart as installed at the new version', async () => {
    const state = { list: safariAndVentura, os: '13.7.3' };
    const m = mac(state);
    const b = new SoftwareUpdateBackend(m.exec);
    await b.scan();
    state.list = onlySequoia; // staged: no longer offered, the running macOS still 13.7.3 until the restart
    const result = await runner(b).install({
      patches: [
        {
          patchId: 'apple:macOS Ventura 13.7.4-22H420',
          packages: [{ manager: 'softwareupdate', name: 'macOS Ventura 13.7.4-22H420', version: '13.7.4' }],
          rebootRequired: true,
        },
      ],
    });
    expect(result).toMatchObject({
      status: 'succeeded',
      patches: [{ state: 'pending_reboot', installedVersion: '13.7.4' }],
    });
    expect(m.calls.find((c) => c[1] === '--install')).toEqual([
      'softwareupdate',
      '--install',
      '--agree-to-license',
      'macOS Ventura 13.7.4-22H420',
    ]);
  });

  it('refuses a label that would be read as an option', async () => {
    const m = mac({ list: '', os: '13.7.3' });
    const r = await new SoftwareUpdateBackend(m.exec).install([{ manager: 'softwareupdate', name: '--all' }]);
    expect(r).toMatchObject({
      ok: false,
      error: 'refusing the softwareupdate label "--all": it starts with "-" and would be read as an option',
    });
    expect(m.calls).toEqual([]);
  });
});
