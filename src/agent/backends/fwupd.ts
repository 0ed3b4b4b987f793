/**
 * Device firmware through fwupd (LVFS). Scan = `fwupdmgr refresh` + `fwupdmgr get-updates --json` (device, vendor,
 * current and offered version, CVEs from the release's Issues, reboot need from the device flags); the LVFS urgency
 * comes from the same command's text output in the C locale, because fwupd 2.0 leaves `Urgency` out of its JSON
 * (fwupd_release_add_json writes no such member; the text writer does). Install = `fwupdmgr install -- DEVICE VERSION`
 * on every device here that is offered that release; rollback = the same with `--allow-older`.
 *
 * A package is named by the release's AppStream id (`com.lenovo.ThinkPadN2JET.firmware`): the same on every endpoint,
 * whereas fwupd's DeviceId is a hash of this machine's device path. The devices are looked up here at install time.
 */
import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';
import { execFile, tail, type Exec } from '../exec';
import type { Backend, OperationResult } from './types';

export interface FwupdRelease {
  AppstreamId?: string;
  Name?: string;
  Summary?: string;
  Version: string;
  Vendor?: string;
  /** CVE ids and vendor advisories (`<issues>` in the LVFS metadata). */
  Issues?: string[];
  /** Not written by fwupd 2.0's JSON; read when a later fwupd adds it. */
  Urgency?: string;
  /** Seconds since 1970. */
  Created?: number;
  Flags?: string[];
}

export interface FwupdDevice {
  Name: string;
  DeviceId: string;
  Vendor?: string;
  Version?: string;
  Flags?: string[];
  Releases?: FwupdRelease[];
}

/** fwupd's exit codes (fu-util-common.h): 0 ok, 1 failed, 2 nothing to do, 3 not found. */
const NOTHING_TO_DO = 2;

/** Reads `--json` output: `{"Devices": [...]}`, or throws with fwupd's own message for `{"Error": {...}}`. */
export function parseFwupdDevices(json: string): FwupdDevice[] {
  const text = json.trim();
  if (text === '') return [];
  const d = JSON.parse(text) as { Devices?: FwupdDevice[]; Error?: { Message?: string } };
  if (d.Error) throw new Error(d.Error.Message ?? 'fwupd reported an error without a message');
  return d.Devices ?? [];
}

/** fwupd's message from a `--json` error object, else the tail of what it printed. */
function fwupdError(stdout: string, stderr: string): string {
  try {
    parseFwupdDevices(stdout);
  } catch (e) {
    return (e as Error).message;
  }
  return tail(`${stdout}\n${stderr}`.trim(), 600);
}

/**
 * The urgency of each offered release from `fwupdmgr get-updates` text in the C locale: "Device ID:" opens a
 * device, "New version:" a release, "Urgency:" belongs to that release. Keys are `${deviceId} ${version}`.
 */
export function parseFwupdUrgencies(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let device = '';
  let version = '';
  for (const line of text.split('\n')) {
    const d = /Device ID:\s+(\S+)/.exec(line);
    if (d) {
      device = d[1]!;
      version = '';
      continue;
    }
    const v = /New version:\s+(\S+)/.exec(line);
    if (v) {
      version = v[1]!;
      continue;
    }
    const u = /Urgency:\s+(\S+)/.exec(line);
    if (u && device && version) out.set(`${device} ${version}`, u[1]!.toLowerCase());
  }
  return out;
}

const CVE = /^CVE-\d{4}-\d{4,}$/;
const needsReboot = (d: FwupdDevice) => Boolean(d.Flags?.some((f) => f === 'needs-reboot' || f === 'needs-shutdown'));

/**
 * One patch per offered release: the newest upgrade fwupd lists first for each device (releases without the
 * `is-upgrade` flag are skipped). Identical devices offered the same release give one patch.
 */
export function fwupdToPatches(devices: FwupdDevice[], urgencies: Map<string, string> = new Map()): FoundPatch[] {
  const out = new Map<string, FoundPatch>();
  for (const d of devices) {
    const r = (d.Releases ?? []).find((x) => x.AppstreamId && (x.Flags ?? []).includes('is-upgrade'));
    if (!r) continue;
    const patchId = `firmware:${r.AppstreamId}:${r.Version}`;
    const urgency = r.Urgency?.toLowerCase() ?? urgencies.get(`${d.DeviceId} ${r.Version}`);
    const existing = out.get(patchId);
    if (existing) {
      existing.rebootRequired ||= needsReboot(d);
      continue;
    }
    out.set(patchId, {
      patchId,
      title: `${r.Name ?? d.Name} ${r.Version} for ${d.Name} (now ${d.Version ?? 'unknown'})`,
      vendor: r.Vendor ?? d.Vendor ?? 'unknown',
      product: r.Name ?? d.Name,
      type: 'firmware',
      vendorSeverity: urgency && urgency !== 'unknown' ? urgency : undefined,
      severitySource: 'vendor',
      cves: (r.Issues ?? []).filter((i) => CVE.test(i)),
      rebootRequired: needsReboot(d),
      packages: [{ manager: 'fwupd', name: r.AppstreamId!, version: r.Version }],
      releasedAt: r.Created ? new Date(r.Created * 1000).toISOString() : undefined,
    });
  }
  return [...out.values()];
}

export interface FwupdOptions {
  exec?: Exec;
  /** Extra environment for fwupdmgr (tests: a private system bus and fwupd's state directories). */
  env?: NodeJS.ProcessEnv;
  bin?: string;
}

/** Options that keep fwupdmgr from asking anything (it has no terminal here). */
const QUIET = ['--no-unreported-check', '--no-metadata-check', '--no-remote-check'];

export class FwupdBackend implements Backend {
  readonly name = 'fwupd';
  private readonly exec: Exec;
  private readonly bin: string;
  constructor(private readonly o: FwupdOptions = {}) {
    this.exec = o.exec ?? execFile;
    this.bin = o.bin ?? 'fwupdmgr';
  }

  private run(args: string[], timeoutMs = 10 * 60_000) {
    // The C locale for text we read (urgency); NO_COLOR keeps escape codes out of it.
    return this.exec(this.bin, args, {
      env: { ...process.env, ...this.o.env, LC_ALL: 'C.UTF-8', LANGUAGE: '', NO_COLOR: '1' },
      timeoutMs,
    });
  }

  private async devices(): Promise<FwupdDevice[]> {
    const r = await this.run(['get-devices', '--json']);
    if (r.code === NOTHING_TO_DO) return [];
    if (r.code !== 0) throw new Error(`fwupdmgr get-devices failed (${r.code}): ${fwupdError(r.stdout, r.stderr)}`);
    return parseFwupdDevices(r.stdout);
  }

  async scan(): Promise<FoundPatch[]> {
    const refresh = await this.run(['refresh', '--json'], 15 * 60_000);
    if (refresh.code !== 0 && refresh.code !== NOTHING_TO_DO) {
      throw new Error(
        `fwupdmgr refresh failed (${refresh.code}): ${fwupdError(refresh.stdout, refresh.stderr)}; the firmware metadata (LVFS) could not be updated, so offered versions may be stale`,
      );
    }
    const r = await this.run(['get-updates', '--json']);
    if (r.code === NOTHING_TO_DO) return [];
    if (r.code !== 0) throw new Error(`fwupdmgr get-updates failed (${r.code}): ${fwupdError(r.stdout, r.stderr)}`);
    const devices = parseFwupdDevices(r.stdout);
    if (devices.length === 0) return [];
    const text = await this.run(['get-updates', ...QUIET]);
    return fwupdToPatches(devices, parseFwupdUrgencies(text.stdout));
  }

  private async installOn(
    pkgs: PackageRef[],
    versionOf: (p: PackageRef) => string | undefined,
    extra: string[],
  ): Promise<OperationResult> {
    const devices = await this.devices();
    const logs: string[] = [];
    let reboot = false;
    for (const p of pkgs) {
      const version = versionOf(p);
      if (!version) return { ok: false, error: `no firmware version given for ${p.name}`, log: tail(logs.join('\n')) };
      const targets = devices.filter((d) =>
        (d.Releases ?? []).some((r) => r.AppstreamId === p.name && r.Version === version),
      );
      if (targets.length === 0) {
        return {
          ok: false,
          error: `no device here is offered ${p.name} ${version} (fwupdmgr get-devices lists none); rescan this endpoint`,
          log: tail(logs.join('\n')),
        };
      }
      for (const d of targets) {
        const r = await this.run(
          ['install', '--json', '--no-reboot-check', ...extra, '--', d.DeviceId, version],
          2 * 3600_000,
        );
        logs.push(`${d.Name} (${d.DeviceId}) → ${version}: exit ${r.code}\n${r.stdout}${r.stderr}`);
        if (r.code !== 0)
          return {
            ok: false,
            error: `fwupdmgr install ${version} on ${d.Name} failed (${r.code}): ${fwupdError(r.stdout, r.stderr)}`,
            log: tail(logs.join('\n')),
          };
        reboot ||= needsReboot(d);
      }
    }
    return { ok: true, rebootRequired: reboot || (await this.rebootPending()), log: tail(logs.join('\n')) };
  }

  install(pkgs: PackageRef[]): Promise<OperationResult> {
    return this.installOn(pkgs, (p) => p.version, []);
  }

  /** Flashes the previous version back; devices with a minimum version above it refuse, and fwupd says so. */
  rollback(pkgs: PackageRef[], previousVersions: Record<string, string>): Promise<OperationResult> {
    return this.installOn(pkgs, (p) => previousVersions[p.name], ['--allow-older']);
  }

  /**
   * Firmware staged for the next boot (a UEFI capsule, a device that applies it when restarted): the device still
   * reports its old version and carries `needs-reboot`, and fwupd's history holds the release it will apply. Keyed
   * by DeviceId. A failed history entry (state 3 failed, 5 failed-transient) stages nothing.
   */
  private async staged(devices: FwupdDevice[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (!devices.some(needsReboot)) return out;
    const r = await this.run(['get-history', '--json']);
    if (r.code !== 0) return out;
    const history = parseFwupdDevices(r.stdout) as Array<FwupdDevice & { UpdateState?: number }>;
    for (const h of history) {
      const now = devices.find((d) => d.DeviceId === h.DeviceId);
      const v = h.Releases?.[0]?.Version;
      if (!now || !needsReboot(now) || !v || v === now.Version || h.UpdateState === 3 || h.UpdateState === 5) continue;
      out.set(h.DeviceId, v);
    }
    return out;
  }

  /** The version of the device(s) offered or holding each release; several devices that differ give "a, b". */
  async installedVersions(names: string[]): Promise<Map<string, string | null>> {
    const devices = await this.devices();
    const staged = await this.staged(devices);
    return new Map(
      names.map((n) => {
        const vs = [
          ...new Set(
            devices
              .filter((d) => (d.Releases ?? []).some((r) => r.AppstreamId === n))
              .map((d) => staged.get(d.DeviceId) ?? d.Version ?? ''),
          ),
        ];
        return [n, vs.length === 0 ? null : vs.join(', ')];
      }),
    );
  }

  async inventory() {
    return (await this.devices())
      .filter((d) => d.Version)
      .map((d) => ({ source: 'fwupd', name: d.Name, version: d.Version!, vendor: d.Vendor }));
  }

  async rebootPending(): Promise<boolean> {
    const devices = await this.devices().catch(() => []);
    return (await this.staged(devices).catch(() => new Map())).size > 0;
  }
}
