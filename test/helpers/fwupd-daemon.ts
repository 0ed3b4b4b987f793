/**
 * A real fwupd daemon for tests, away from the host's: its own D-Bus system bus (a socket in a temp folder), its
 * own configuration and state folders (FWUPD_SYSCONFDIR, FWUPD_LOCALSTATEDIR), and fwupd's test plugin
 * (`TestDevices=true`), which shows the "Integrated Webcam™" fake device at 1.2.2. The firmware offered comes from
 * fwupd's own test metadata and cabinets (Debian package fwupd-tests, /usr/share/installed-tests/fwupd), served
 * through a local remote; the one change we make to that metadata is stated in `composedChange`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const FWUPD_DAEMON = '/usr/libexec/fwupd/fwupd';
export const FWUPD_TESTS_DIR = '/usr/share/installed-tests/fwupd';
export const FAKE_DEVICE_ID = '08d460be0f1f9f128413f816022a6439e0078018';

/** Release 1.2.4 of fwupd's test metadata gets urgency "high" (it says "medium") and two issues, a CVE and a vendor advisory. */
export const composedChange = {
  from: '<release version="1.2.4" timestamp="1497499200" urgency="medium">',
  to: '<release version="1.2.4" timestamp="1497499200" urgency="high"><issues><issue type="cve">CVE-2022-21894</issue><issue type="dell">DSA-2023-001</issue></issues>',
};

const onPath = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;

/** What is missing to run fwupd here ([] when nothing). */
export function fwupdMissing(): string[] {
  const missing: string[] = [];
  if (!onPath('fwupdmgr') || !fs.existsSync(FWUPD_DAEMON)) missing.push('fwupd (Debian package fwupd)');
  if (!onPath('dbus-daemon')) missing.push('dbus-daemon (Debian package dbus-daemon)');
  if (!fs.existsSync(path.join(FWUPD_TESTS_DIR, 'fakedevice124.cab')))
    missing.push('fwupd test data (Debian package fwupd-tests)');
  return missing;
}

export interface FwupdTestDaemon {
  dir: string;
  /** Environment for fwupdmgr to reach this daemon and nothing else. */
  env: NodeJS.ProcessEnv;
  /** Runs fwupdmgr against this daemon. */
  fwupdmgr(args: string[]): { code: number; stdout: string; stderr: string };
  log(): string;
  stop(): Promise<void>;
}

const stopChild = (c: ChildProcess | undefined) =>
  new Promise<void>((resolve) => {
    if (!c || c.exitCode !== null || c.signalCode !== null) return resolve();
    c.once('exit', () => resolve());
    c.kill('SIGTERM');
    setTimeout(() => c.kill('SIGKILL'), 3000).unref();
  });

export async function startFwupd(o: { needsReboot?: boolean } = {}): Promise<FwupdTestDaemon> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'patchops-fwupd-'));
  const etc = path.join(dir, 'etc');
  fs.mkdirSync(path.join(etc, 'fwupd/remotes.d'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'var'));
  fs.mkdirSync(path.join(dir, 'meta'));
  // OnlyTrusted=false: the test cabinets are not signed by the LVFS key (fwupd's own installed tests do the same).
  fs.writeFileSync(
    path.join(etc, 'fwupd/fwupd.conf'),
    `[fwupd]\nTestDevices=true\nOnlyTrusted=false\nUpdateMotd=false\n${o.needsReboot ? '[test]\nNeedsReboot=true\n' : ''}`,
  );
  for (const cab of ['fakedevice123.cab', 'fakedevice124.cab'])
    fs.copyFileSync(path.join(FWUPD_TESTS_DIR, cab), path.join(dir, 'meta', cab));
  const metadata = fs.readFileSync(path.join(FWUPD_TESTS_DIR, 'fwupd-tests.xml'), 'utf8');
  if (!metadata.includes(composedChange.from))
    throw new Error('fwupd-tests.xml changed: release 1.2.4 is not where the test expects it');
  fs.writeFileSync(path.join(dir, 'meta/patchops-tests.xml'), metadata.replace(composedChange.from, composedChange.to));
  fs.writeFileSync(
    path.join(etc, 'fwupd/remotes.d/patchops-tests.conf'),
    `[fwupd Remote]\nEnabled=true\nTitle=patchops tests\nMetadataURI=file://${dir}/meta/patchops-tests.xml\n`,
  );

  const socket = path.join(dir, 'bus.sock');
  fs.writeFileSync(
    path.join(dir, 'bus.conf'),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${socket}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/><allow send_destination="*"/><allow receive_sender="*"/></policy>
</busconfig>\n`,
  );
  const env: NodeJS.ProcessEnv = {
    DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${socket}`,
    FWUPD_SYSCONFDIR: etc,
    FWUPD_LOCALSTATEDIR: path.join(dir, 'var'),
  };
  const full = { ...process.env, ...env, NO_COLOR: '1' };
  let log = '';
  const bus = spawn('dbus-daemon', ['--nofork', `--config-file=${path.join(dir, 'bus.conf')}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  bus.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  let daemon: ChildProcess | undefined;
  const fwupdmgr = (args: string[]) => {
    const r = spawnSync('fwupdmgr', args, {
      env: full,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
  };
  const stop = async () => {
    await stopChild(daemon);
    await stopChild(bus);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 100 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
    if (!fs.existsSync(socket)) throw new Error(`dbus-daemon did not start: ${log}`);
    daemon = spawn(FWUPD_DAEMON, ['--verbose'], { env: full, stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    daemon.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    let ready = false;
    for (let i = 0; i < 60 && !ready; i++) {
      await new Promise((r) => setTimeout(r, 250));
      ready = fwupdmgr(['get-devices', '--json']).code === 0;
    }
    if (!ready) throw new Error(`fwupd did not answer on its test bus: ${log.slice(-2000)}`);
    // Only our remote: fwupd's own test remote offers the same releases without the composed change.
    const off = fwupdmgr(['disable-remote', 'fwupd-tests']);
    if (off.code !== 0) throw new Error(`could not disable the fwupd-tests remote: ${off.stdout}${off.stderr}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { dir, env, fwupdmgr, log: () => log, stop };
}
