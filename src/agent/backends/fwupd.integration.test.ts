/**
 * The fwupd backend against a real fwupd 2.0 daemon (its test plugin's fake webcam, fwupd's own test firmware),
 * on a private D-Bus bus with its own state: every JSON and text output read here is printed by fwupdmgr in this run.
 */
import path from 'node:path';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testJobRunner } from '../../../test/helpers/job-runner';
import { FAKE_DEVICE_ID, fwupdMissing, startFwupd, type FwupdTestDaemon } from '../../../test/helpers/fwupd-daemon';
import { normalizeSeverity } from '../../domain/patch';
import { foundPatchSchema } from '../../shared/agent-protocol';
import { execFile, type Exec } from '../exec';
import { FwupdBackend, parseFwupdDevices } from './fwupd';

const missing = fwupdMissing();
if (missing.length > 0) console.warn(`fwupd backend tests skipped: missing ${missing.join(', ')}`);

const APPSTREAM_ID = 'fakedevice.firmware';

function recording(): { exec: Exec; calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    exec: (file, args, options) => {
      calls.push([file, ...args]);
      return execFile(file, args, options);
    },
  };
}

function runnerFor(backend: FwupdBackend) {
  return testJobRunner([['fwupd', backend]], path.join(os.tmpdir(), 'patchops-fwupd-dl'));
}

describe.skipIf(missing.length > 0)('fwupd backend, for real (fwupd daemon, test plugin, fwupd test firmware)', () => {
  let d: FwupdTestDaemon;
  beforeAll(async () => {
    d = await startFwupd();
  }, 60_000);
  afterAll(async () => {
    await d?.stop();
  });

  it('scans: device, vendor, current and offered version, LVFS urgency, CVEs, no reboot; fwupd 2.0 JSON has no Urgency', async () => {
    const raw = d.fwupdmgr(['get-updates', '--json']);
    expect(raw.code).toBe(0);
    const [device] = parseFwupdDevices(raw.stdout);
    expect(device).toMatchObject({
      Name: 'Integrated Webcam™',
      DeviceId: FAKE_DEVICE_ID,
      Vendor: 'ACME Corp.',
      Version: '1.2.2',
    });
    expect(device!.Releases!.map((r) => [r.Version, r.Issues ?? [], 'Urgency' in r])).toEqual([
      ['1.2.4', ['CVE-2022-21894', 'DSA-2023-001'], false],
      ['1.2.3', [], false],
    ]);

    const { exec, calls } = recording();
    const found = await new FwupdBackend({ exec, env: d.env }).scan();
    expect(found).toEqual([
      {
        patchId: 'firmware:fakedevice.firmware:1.2.4',
        title: 'FakeDevice Firmware 1.2.4 for Integrated Webcam™ (now 1.2.2)',
        vendor: 'ACME Corp',
        product: 'FakeDevice Firmware',
        type: 'firmware',
        vendorSeverity: 'high',
        severitySource: 'vendor',
        cves: ['CVE-2022-21894'],
        rebootRequired: false,
        packages: [{ manager: 'fwupd', name: APPSTREAM_ID, version: '1.2.4' }],
        releasedAt: '2017-06-15T04:00:00.000Z',
      },
    ]);
    expect(() => foundPatchSchema.parse(found[0])).not.toThrow();
    expect(normalizeSeverity('vendor', found[0]!.vendorSeverity)).toBe('important');
    expect(calls.map((c) => c.slice(1, 3))).toEqual([
      ['refresh', '--json'],
      ['get-updates', '--json'],
      ['get-updates', '--no-unreported-check'],
    ]);
  });

  it('installs the exact version asked (1.2.3, not the newest), verifies it, rolls back, then updates to 1.2.4 through the job runner', async () => {
    const { exec, calls } = recording();
    const fwupd = new FwupdBackend({ exec, env: d.env });
    const first = await fwupd.install([{ manager: 'fwupd', name: APPSTREAM_ID, version: '1.2.3' }]);
    expect(first).toMatchObject({ ok: true, rebootRequired: false });
    const install = calls.find((c) => c[1] === 'install')!;
    expect(install.slice(-3)).toEqual(['--', FAKE_DEVICE_ID, '1.2.3']);
    expect((await fwupd.installedVersions([APPSTREAM_ID])).get(APPSTREAM_ID)).toBe('1.2.3');
    expect((await fwupd.scan()).map((p) => p.patchId)).toEqual(['firmware:fakedevice.firmware:1.2.4']);

    const back = await fwupd.rollback([{ manager: 'fwupd', name: APPSTREAM_ID, version: '1.2.3' }], {
      [APPSTREAM_ID]: '1.2.2',
    });
    // fwupd's test metadata holds no 1.2.2 release: the rollback is refused before fwupdmgr runs, nothing changes.
    expect(back.ok).toBe(false);
    expect(back.error).toMatch(/no device here is offered fakedevice\.firmware 1\.2\.2/);
    expect((await fwupd.installedVersions([APPSTREAM_ID])).get(APPSTREAM_ID)).toBe('1.2.3');

    const { runner } = runnerFor(fwupd);
    const [patch] = await fwupd.scan();
    const result = await runner.install({
      patches: [{ patchId: patch!.patchId, packages: patch!.packages, rebootRequired: patch!.rebootRequired }],
    });
    expect(result).toMatchObject({
      status: 'succeeded',
      patches: [{ patchId: 'firmware:fakedevice.firmware:1.2.4', state: 'installed', installedVersion: '1.2.4' }],
    });
    expect(
      JSON.parse(d.fwupdmgr(['get-devices', '--json']).stdout).Devices.find(
        (x: { DeviceId: string }) => x.DeviceId === FAKE_DEVICE_ID,
      ).Version,
    ).toBe('1.2.4');
    expect(await fwupd.scan()).toEqual([]);
    expect(
      (
        await runner.verify({
          patches: [{ patchId: patch!.patchId, packages: patch!.packages, rebootRequired: false }],
        })
      ).status,
    ).toBe('succeeded');

    const down = await fwupd.rollback([{ manager: 'fwupd', name: APPSTREAM_ID, version: '1.2.4' }], {
      [APPSTREAM_ID]: '1.2.3',
    });
    expect(down).toMatchObject({ ok: true });
    expect(calls.filter((c) => c[1] === 'install').at(-1)).toEqual(
      expect.arrayContaining(['--allow-older', '--', FAKE_DEVICE_ID, '1.2.3']),
    );
    expect((await fwupd.installedVersions([APPSTREAM_ID])).get(APPSTREAM_ID)).toBe('1.2.3');
  });

  it('refuses a version no device is offered, and a version that looks like an option never reaches fwupdmgr as one', async () => {
    const { exec, calls } = recording();
    const fwupd = new FwupdBackend({ exec, env: d.env });
    const r = await fwupd.install([{ manager: 'fwupd', name: APPSTREAM_ID, version: '9.9.9' }]);
    expect(r).toMatchObject({
      ok: false,
      error:
        'no device here is offered fakedevice.firmware 9.9.9 (fwupdmgr get-devices lists none); rescan this endpoint',
    });
    const o = await fwupd.install([{ manager: 'fwupd', name: APPSTREAM_ID, version: '--allow-reinstall' }]);
    expect(o.ok).toBe(false);
    expect(calls.some((c) => c[1] === 'install')).toBe(false);
  });

  it('lists the device in the inventory', async () => {
    const inv = await new FwupdBackend({ env: d.env }).inventory();
    expect(inv).toContainEqual({
      source: 'fwupd',
      name: 'Integrated Webcam™',
      version: expect.stringMatching(/^1\.2\.\d$/),
      vendor: 'ACME Corp.',
    });
  });
});

describe.skipIf(missing.length > 0)(
  'fwupd backend, firmware applied at the next boot (test plugin NeedsReboot)',
  () => {
    let d: FwupdTestDaemon;
    beforeAll(async () => {
      d = await startFwupd({ needsReboot: true });
    }, 60_000);
    afterAll(async () => {
      await d?.stop();
    });

    it('reports the staged version and a pending reboot while the device still runs the old one', async () => {
      const fwupd = new FwupdBackend({ env: d.env });
      expect(await fwupd.rebootPending()).toBe(false);
      const r = await fwupd.install([{ manager: 'fwupd', name: APPSTREAM_ID, version: '1.2.4' }]);
      expect(r).toMatchObject({ ok: true, rebootRequired: true });
      const device = JSON.parse(d.fwupdmgr(['get-devices', '--json']).stdout).Devices.find(
        (x: { DeviceId: string }) => x.DeviceId === FAKE_DEVICE_ID,
      );
      expect(device.Version).toBe('1.2.2');
      expect(device.Flags).toContain('needs-reboot');
      expect((await fwupd.installedVersions([APPSTREAM_ID])).get(APPSTREAM_ID)).toBe('1.2.4');
      expect(await fwupd.rebootPending()).toBe(true);
    });
  },
);
