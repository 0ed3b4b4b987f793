/**
 * macOS `softwareupdate`: Apple's updates for this Mac. Install by label. Every list format is read: macOS 10.15
 * and later ("* Label: …" then "Title: …, Version: …, Recommended: YES, Action: restart,"), macOS 10.14 and
 * earlier ("* label" then "title (version), 123K [recommended] [restart]"; "title, version, 123K" in 10.3's).
 * Apple marks nothing as a security update in this output, so the type comes from what the item is (patchType).
 */
import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';
import { execFile, tail, type Exec } from '../exec';
import type { Backend, OperationResult } from './types';

export interface SoftwareUpdateItem {
  label: string;
  title: string;
  version: string;
  recommended: boolean;
  /** Action: restart or shut down ([restart] / [shut down] in the old format). */
  restart: boolean;
}

/** Parses `softwareupdate --list` in either format; `*` marks recommended items, `-` others. */
export function parseSoftwareUpdateList(text: string): SoftwareUpdateItem[] {
  const out: SoftwareUpdateItem[] = [];
  const lines = text.replace(/\r/g, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const head = /^\s*([*-])\s+(.*?)\s*$/.exec(lines[i]!);
    if (!head) continue;
    const detail = (lines[i + 1] ?? '').trim();
    const labelled = /^Label:\s*(.+)$/.exec(head[2]!);
    if (labelled) {
      const field = (k: string) => new RegExp(`(?:^|, )${k}:\\s*([^,]*)`).exec(detail)?.[1]?.trim() ?? '';
      out.push({
        label: labelled[1]!,
        title: field('Title'),
        version: field('Version'),
        recommended: /Recommended:\s*YES/i.test(detail),
        restart: /Action:\s*(restart|shut down)/i.test(detail),
      });
      continue;
    }
    // Old formats: "Title (1.2.3), 12345K [recommended] [restart]" (10.5–10.14; a comma may follow the title or the
    // size) and "Title, 1.2.3, 12345K [recommended]" (the example in Apple's softwareupdate(8) of 10.3).
    const old =
      /^(.*?),?\s*\(([^)]*)\),\s*\d+K,?\s*(.*)$/.exec(detail) ?? /^(.*?),\s*([^,]+?),\s*\d+K,?\s*(.*)$/.exec(detail);
    if (!old) continue;
    out.push({
      label: head[2]!,
      title: old[1]!.trim(),
      version: old[2]!.trim(),
      recommended: head[1] === '*' || /\[recommended\]/i.test(old[3]!),
      restart: /\[(restart|shut down)\]/i.test(old[3]!),
    });
  }
  return out;
}

const major = (v: string | undefined): number | null => {
  const m = /^(\d+)(?:\.(\d+))?/.exec(v ?? '');
  if (!m) return null;
  // 10.x releases are told apart by their second number (10.14 Mojave, 10.15 Catalina).
  return m[1] === '10' ? 10 + Number(m[2] ?? 0) / 100 : Number(m[1]);
};

/** An update of macOS itself (its title or label names macOS or Mac OS X), as opposed to an app or tool. */
const isMacOs = (u: Pick<SoftwareUpdateItem, 'title' | 'label'>) =>
  /^(macOS|Mac OS X|OS X)\b/i.test(u.title || u.label);

/**
 * What kind of update it is. Apple's security content ships as Security Updates, Rapid/Background Security
 * Responses and the point releases of the running macOS; a macOS of another major version is an upgrade
 * (feature); XProtect, MRT, Gatekeeper data are definitions; Command Line Tools are tools; apps (Safari) updates.
 */
export function patchType(u: SoftwareUpdateItem, osVersion?: string): string {
  const what = `${u.title} ${u.label}`;
  if (/Security Update|Security Response|Background Security/i.test(what)) return 'security';
  if (/XProtect|MRT(Config)?Data|Gatekeeper|Configuration Data|Compatibility Data/i.test(what)) return 'definition';
  if (/Command Line Tools/i.test(what)) return 'tool';
  if (isMacOs(u)) {
    const now = major(osVersion);
    const offered = major(u.version);
    if (now !== null && offered !== null && offered !== now) return 'feature';
    return now === null ? 'update' : 'security';
  }
  return 'update';
}

export function softwareUpdateToPatches(items: SoftwareUpdateItem[], osVersion?: string): FoundPatch[] {
  return items.map((u) => ({
    patchId: `apple:${u.label}`,
    title: u.title ? `${u.title} ${u.version}`.trim() : u.label,
    vendor: 'Apple',
    product: u.title || u.label,
    type: patchType(u, osVersion),
    severitySource: 'apple',
    cves: [],
    rebootRequired: u.restart,
    packages: [{ manager: 'softwareupdate', name: u.label, version: u.version || undefined }],
  }));
}

/** The version at the end of a label ("Safari18.3.1VenturaAuto-18.3.1" → 18.3.1); null for a build ("…-22H420"). */
export const labelVersion = (label: string): string | null => /-(\d+(?:\.\d+)+)\s*$/.exec(label)?.[1] ?? null;

export class SoftwareUpdateBackend implements Backend {
  readonly name = 'softwareupdate';
  /** What this process last saw offered, by label (version, restart). */
  private readonly offered = new Map<string, SoftwareUpdateItem>();
  constructor(private readonly exec: Exec = execFile) {}

  private async osVersion(): Promise<string | undefined> {
    const r = await this.exec('sw_vers', []);
    return /ProductVersion:\s*(\S+)/.exec(r.stdout)?.[1];
  }

  private async list(): Promise<SoftwareUpdateItem[]> {
    const r = await this.exec('softwareupdate', ['--list'], { timeoutMs: 15 * 60_000 });
    if (r.code !== 0) throw new Error(`softwareupdate --list failed (${r.code}): ${tail(r.stderr, 500)}`);
    const items = parseSoftwareUpdateList(r.stdout + r.stderr);
    for (const u of items) this.offered.set(u.label, u);
    return items;
  }

  async scan(): Promise<FoundPatch[]> {
    const items = await this.list();
    return softwareUpdateToPatches(items, await this.osVersion());
  }

  /** softwareupdate has no documented `--` end of options: a label that starts with "-" is refused instead. */
  async install(pkgs: PackageRef[]): Promise<OperationResult> {
    const bad = pkgs.find((p) => p.name.startsWith('-'));
    if (bad)
      return {
        ok: false,
        error: `refusing the softwareupdate label "${bad.name}": it starts with "-" and would be read as an option`,
        log: '',
      };
    const r = await this.exec('softwareupdate', ['--install', '--agree-to-license', ...pkgs.map((p) => p.name)], {
      timeoutMs: 3 * 3600_000,
    });
    return {
      ok: r.code === 0,
      rebootRequired: /restart/i.test(r.stdout + r.stderr),
      error: r.code === 0 ? undefined : `softwareupdate --install failed (${r.code}): ${tail(r.stderr, 500)}`,
      log: tail(r.stdout + r.stderr),
    };
  }

  async rollback(): Promise<OperationResult> {
    return { ok: false, error: 'macOS updates cannot be uninstalled; restore from a Time Machine snapshot', log: '' };
  }

  /**
   * An update still offered is not installed (null). Otherwise: a macOS update reads the running macOS (`sw_vers`),
   * or, while a restart it needs is still to come, the version this agent installed (staged); Safari reads its own
   * bundle version; anything else the version it was offered as (remembered from this process's scan, else the
   * version at the end of its label): Apple lists no installed versions for those.
   */
  async installedVersions(names: string[]): Promise<Map<string, string | null>> {
    const listed = new Set((await this.list().catch(() => [])).map((u) => u.label));
    const out = new Map<string, string | null>();
    for (const n of names) {
      if (listed.has(n)) {
        out.set(n, null);
        continue;
      }
      const seen = this.offered.get(n);
      if (isMacOs({ title: seen?.title ?? '', label: n }) && !/Security Update/i.test(n)) {
        const running = await this.osVersion();
        out.set(n, seen?.restart && seen.version && running !== seen.version ? seen.version : (running ?? null));
      } else if (/^Safari/i.test(n)) {
        const r = await this.exec('defaults', [
          'read',
          '/Applications/Safari.app/Contents/Info',
          'CFBundleShortVersionString',
        ]);
        out.set(n, r.code === 0 ? r.stdout.trim() : null);
      } else {
        out.set(n, seen?.version || labelVersion(n));
      }
    }
    return out;
  }

  async inventory() {
    const v = await this.osVersion();
    return v ? [{ source: 'macos', name: 'macOS', version: v, vendor: 'Apple' }] : [];
  }
}
