/** macOS `softwareupdate`: recommended updates, "Action: restart". Install by label. */
import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';
import { execFile, tail, type Exec } from '../exec';
import type { Backend, OperationResult } from './types';

export interface SoftwareUpdateItem {
  label: string;
  title: string;
  version: string;
  recommended: boolean;
  restart: boolean;
}

/** Parses `softwareupdate --list` in the macOS 10.15+ form ("* Label: …" then "Title: …, Version: …, Recommended: YES, Action: restart,"). */
export function parseSoftwareUpdateList(text: string): SoftwareUpdateItem[] {
  const out: SoftwareUpdateItem[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*\*\s*Label:\s*(.+?)\s*$/.exec(lines[i]!);
    if (!m) continue;
    const detail = lines[i + 1] ?? '';
    const field = (k: string) => new RegExp(`${k}:\\s*([^,]*)`).exec(detail)?.[1]?.trim() ?? '';
    out.push({ label: m[1]!, title: field('Title'), version: field('Version'), recommended: /Recommended:\s*YES/i.test(detail), restart: /Action:\s*restart/i.test(detail) });
  }
  return out;
}

export function softwareUpdateToPatches(items: SoftwareUpdateItem[]): FoundPatch[] {
  return items.map((u) => ({
    patchId: `apple:${u.label}`,
    title: u.title ? `${u.title} ${u.version}`.trim() : u.label,
    vendor: 'Apple',
    product: u.title || u.label,
    type: /^macOS/i.test(u.title) ? (u.recommended ? 'security' : 'feature') : 'update',
    severitySource: 'apple',
    cves: [],
    rebootRequired: u.restart,
    packages: [{ manager: 'softwareupdate', name: u.label, version: u.version || undefined }],
  }));
}

export class SoftwareUpdateBackend implements Backend {
  readonly name = 'softwareupdate';
  constructor(private readonly exec: Exec = execFile) {}

  async scan(): Promise<FoundPatch[]> {
    const r = await this.exec('softwareupdate', ['--list'], { timeoutMs: 15 * 60_000 });
    if (r.code !== 0) throw new Error(`softwareupdate --list failed (${r.code}): ${tail(r.stderr, 500)}`);
    return softwareUpdateToPatches(parseSoftwareUpdateList(r.stdout + r.stderr));
  }

  async install(pkgs: PackageRef[]): Promise<OperationResult> {
    const r = await this.exec('softwareupdate', ['--install', ...pkgs.map((p) => p.name), '--agree-to-license'], { timeoutMs: 3 * 3600_000 });
    return { ok: r.code === 0, rebootRequired: /restart/i.test(r.stdout + r.stderr), error: r.code === 0 ? undefined : `softwareupdate --install failed (${r.code}): ${tail(r.stderr, 500)}`, log: tail(r.stdout + r.stderr) };
  }

  async rollback(): Promise<OperationResult> {
    return { ok: false, error: 'macOS updates cannot be uninstalled; restore from a Time Machine snapshot', log: '' };
  }

  async installedVersions(names: string[]): Promise<Map<string, string | null>> {
    // An update no longer listed is installed.
    const listed = new Set((await this.scan().catch(() => [])).map((p) => p.packages[0]!.name));
    return new Map(names.map((n) => [n, listed.has(n) ? null : 'installed']));
  }

  async inventory() {
    const r = await this.exec('sw_vers', []);
    const v = /ProductVersion:\s*(\S+)/.exec(r.stdout)?.[1];
    return v ? [{ source: 'macos', name: 'macOS', version: v, vendor: 'Apple' }] : [];
  }
}
