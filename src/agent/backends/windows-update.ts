/**
 * Windows Update through the Windows Update Agent API: windows-update.ps1 (beside this file) searches
 * `IsInstalled=0 and IsHidden=0` and returns KB, MSRC severity, classification, reboot behaviour, CVEs and
 * supersedence as JSON; installs by KB; uninstalls through wusa (DISM as the fallback).
 */
import { fileURLToPath } from 'node:url';
import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';
import { execFile, tail, type Exec } from '../exec';
import type { Backend, OperationResult } from './types';

export const WINDOWS_UPDATE_SCRIPT = fileURLToPath(new URL('./windows-update.ps1', import.meta.url));

/** A KB number as the backend names its packages (updates without one are named WU-<UpdateID> and not installed by KB). */
const KB = /^KB[0-9]+$/i;

export interface WuaUpdate {
  KB: string | null;
  Title: string;
  MsrcSeverity: string;
  Categories: string[];
  RebootRequired: boolean;
  CVEIds: string[];
  UpdateID: string;
  SupersededUpdateIDs: string[];
  LastDeploymentChangeTime?: string;
}

const CLASSIFICATIONS: Array<[RegExp, string]> = [
  [/^Security Updates$/i, 'security'],
  [/^Critical Updates$/i, 'critical'],
  [/^Definition Updates$/i, 'definition'],
  [/^Update Rollups$/i, 'update_rollup'],
  [/^Service Packs$/i, 'service_pack'],
  [/^Feature Packs$/i, 'feature'],
  [/^Upgrades$/i, 'feature'],
  [/^Tools$/i, 'tool'],
  [/^Hotfix/i, 'hotfix'],
  [/^(Updates|Drivers)$/i, 'update'],
];

export function parseWuaSearch(json: string): WuaUpdate[] {
  const v = JSON.parse(json || '[]') as WuaUpdate | WuaUpdate[];
  return Array.isArray(v) ? v : [v];
}

export function wuaToPatches(list: WuaUpdate[]): FoundPatch[] {
  return list.map((u) => {
    const type = u.Categories.map((c) => CLASSIFICATIONS.find(([re]) => re.test(c))?.[1]).find(Boolean) ?? 'update';
    const id = u.KB ? `KB${u.KB}` : `WU-${u.UpdateID}`;
    return {
      patchId: id,
      title: u.Title,
      vendor: 'Microsoft',
      product: u.Categories.find((c) => !CLASSIFICATIONS.some(([re]) => re.test(c))) ?? 'Windows',
      type,
      vendorSeverity: u.MsrcSeverity || undefined,
      severitySource: 'msrc',
      cves: u.CVEIds ?? [],
      rebootRequired: u.RebootRequired,
      packages: [{ manager: 'windows-update', name: id }],
      releasedAt: u.LastDeploymentChangeTime ? `${u.LastDeploymentChangeTime.slice(0, 10)}T00:00:00Z` : undefined,
    };
  });
}

export class WindowsUpdateBackend implements Backend {
  readonly name = 'windows-update';
  constructor(
    private readonly exec: Exec = execFile,
    private readonly script = WINDOWS_UPDATE_SCRIPT,
  ) {}

  private ps(args: string[], timeoutMs = 3 * 3600_000) {
    return this.exec(
      'powershell.exe',
      ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', this.script, ...args],
      { timeoutMs },
    );
  }

  async scan(): Promise<FoundPatch[]> {
    const r = await this.ps(['-Action', 'Search'], 30 * 60_000);
    if (r.code !== 0) throw new Error(`Windows Update search failed (${r.code}): ${tail(r.stderr, 800)}`);
    return wuaToPatches(parseWuaSearch(r.stdout.trim()));
  }

  /**
   * One `-KBs 5034441,5032339` argument: through `-File` PowerShell hands it to the script as one string, which the
   * script splits (an array parameter cannot be filled from -File). Only KB numbers are passed, so none can act as
   * a parameter.
   */
  async install(pkgs: PackageRef[]): Promise<OperationResult> {
    const bad = pkgs.find((p) => !KB.test(p.name));
    if (bad)
      return {
        ok: false,
        error: `"${bad.name}" is not a KB number (KB followed by digits); Windows Update installs by KB only`,
        log: '',
      };
    const kbs = pkgs.map((p) => p.name.replace(/^KB/i, ''));
    const r = await this.ps(['-Action', 'Install', '-KBs', kbs.join(',')]);
    let reboot = false;
    try {
      reboot = Boolean((JSON.parse(r.stdout.trim()) as { RebootRequired?: boolean }).RebootRequired);
    } catch {
      // not JSON: reported below through the exit code
    }
    return {
      ok: r.code === 0,
      rebootRequired: reboot,
      error: r.code === 0 ? undefined : `Windows Update install failed (${r.code}): ${tail(r.stdout + r.stderr, 800)}`,
      log: tail(r.stdout + r.stderr),
    };
  }

  async rollback(pkgs: PackageRef[]): Promise<OperationResult> {
    const logs: string[] = [];
    for (const p of pkgs) {
      if (!KB.test(p.name))
        return {
          ok: false,
          error: `"${p.name}" is not a KB number (KB followed by digits)`,
          log: tail(logs.join('\n')),
        };
      const r = await this.ps(['-Action', 'Uninstall', '-KBs', p.name.replace(/^KB/i, '')]);
      logs.push(r.stdout);
      if (r.code !== 0)
        return {
          ok: false,
          error: `uninstalling ${p.name} failed: ${tail(r.stdout + r.stderr, 500)}`,
          log: tail(logs.join('\n')),
        };
    }
    return { ok: true, log: tail(logs.join('\n')) };
  }

  async installedVersions(names: string[]): Promise<Map<string, string | null>> {
    const r = await this.exec('powershell.exe', [
      '-NoProfile',
      '-Command',
      'Get-HotFix | Select-Object -ExpandProperty HotFixID',
    ]);
    const have = new Set(r.stdout.split(/\r?\n/).map((s) => s.trim().toUpperCase()));
    return new Map(names.map((n) => [n, have.has(n.toUpperCase()) ? 'installed' : null]));
  }

  async inventory() {
    const r = await this.exec('powershell.exe', [
      '-NoProfile',
      '-Command',
      'Get-HotFix | ForEach-Object { "$($_.HotFixID)`t$($_.InstalledOn)" }',
    ]);
    return r.stdout
      .split(/\r?\n/)
      .filter((l) => l.trim())
      .map((l) => ({ source: 'windows', name: l.split('\t')[0]!.trim(), version: 'installed', vendor: 'Microsoft' }));
  }

  async rebootPending(): Promise<boolean> {
    const r = await this.ps(['-Action', 'RebootPending'], 60_000);
    try {
      return Boolean((JSON.parse(r.stdout.trim()) as { RebootRequired?: boolean }).RebootRequired);
    } catch {
      return false;
    }
  }
}
