/** Homebrew: third-party applications on macOS. Scan = `brew outdated --json=v2` (formulae and casks); pinned formulae are skipped. */
import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';
import { productForPackage } from '../catalog';
import { execFile, tail, type Exec } from '../exec';
import type { Backend, OperationResult } from './types';

interface OutdatedEntry {
  name: string;
  /** Always a list here; Homebrew printed a cask's as one string ("3.0.2", "a, b" for several) before 4.1 (2023). */
  installed_versions: string[];
  current_version: string;
  pinned?: boolean;
}

interface RawOutdatedEntry extends Omit<OutdatedEntry, 'installed_versions'> {
  installed_versions: string[] | string;
}

const versionList = (v: string[] | string): string[] => (Array.isArray(v) ? v : v.split(', ').filter(Boolean));

export function parseBrewOutdated(json: string): Array<OutdatedEntry & { kind: 'formula' | 'cask' }> {
  const d = JSON.parse(json) as { formulae?: RawOutdatedEntry[]; casks?: RawOutdatedEntry[] };
  const read = (e: RawOutdatedEntry, kind: 'formula' | 'cask') => ({ ...e, installed_versions: versionList(e.installed_versions), kind });
  return [...(d.formulae ?? []).map((f) => read(f, 'formula')), ...(d.casks ?? []).map((c) => read(c, 'cask'))];
}

/** Pinned formulae are skipped, and so are entries already at the current version (`--greedy` lists `version :latest` casks as latest → latest). */
export function brewToPatches(list: ReturnType<typeof parseBrewOutdated>): FoundPatch[] {
  return list
    .filter((e) => !e.pinned && !e.installed_versions.includes(e.current_version))
    .map((e) => {
      const product = productForPackage('brew', e.name);
      return {
        patchId: `third-party:${product?.key ?? `brew-${e.name}`}:${e.current_version}`,
        title: `${e.name} ${e.installed_versions.join(', ')} → ${e.current_version}`,
        vendor: product?.vendor ?? 'Homebrew',
        product: product?.name ?? e.name,
        type: 'update',
        severitySource: 'vendor',
        cves: [],
        rebootRequired: false,
        packages: [{ manager: 'brew', name: e.kind === 'cask' ? `cask:${e.name}` : e.name, version: e.current_version }],
      };
    });
}

export class BrewBackend implements Backend {
  readonly name = 'brew';
  constructor(private readonly exec: Exec = execFile) {}

  async scan(): Promise<FoundPatch[]> {
    await this.exec('brew', ['update', '--quiet'], { timeoutMs: 10 * 60_000 });
    const r = await this.exec('brew', ['outdated', '--json=v2'], { timeoutMs: 10 * 60_000 });
    if (r.code !== 0) throw new Error(`brew outdated failed (${r.code}): ${tail(r.stderr, 500)}`);
    return brewToPatches(parseBrewOutdated(r.stdout));
  }

  async install(pkgs: PackageRef[]): Promise<OperationResult> {
    const formulae = pkgs.filter((p) => !p.name.startsWith('cask:')).map((p) => p.name);
    const casks = pkgs.filter((p) => p.name.startsWith('cask:')).map((p) => p.name.slice(5));
    const logs: string[] = [];
    for (const [args, list] of [[['upgrade', '--formula'], formulae], [['upgrade', '--cask'], casks]] as const) {
      if (list.length === 0) continue;
      const r = await this.exec('brew', [...args, ...list], { timeoutMs: 60 * 60_000 });
      logs.push(r.stdout + r.stderr);
      if (r.code !== 0) return { ok: false, error: `brew ${args.join(' ')} failed (${r.code}): ${tail(r.stderr, 500)}`, log: tail(logs.join('\n')) };
    }
    return { ok: true, log: tail(logs.join('\n')) };
  }

  async rollback(pkgs: PackageRef[]): Promise<OperationResult> {
    return { ok: false, error: `Homebrew keeps no older bottles to return to for ${pkgs.map((p) => p.name).join(', ')}; pin and reinstall the earlier version by hand`, log: '' };
  }

  async installedVersions(names: string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>(names.map((n) => [n, null]));
    const r = await this.exec('brew', ['list', '--versions', ...names.map((n) => n.replace(/^cask:/, ''))]);
    for (const line of r.stdout.split('\n')) {
      const [n, ...vs] = line.trim().split(/\s+/);
      const key = names.find((x) => x.replace(/^cask:/, '') === n);
      if (key && vs.length) out.set(key, vs[vs.length - 1]!);
    }
    return out;
  }

  async inventory() {
    const r = await this.exec('brew', ['list', '--versions']);
    return r.stdout.split('\n').filter(Boolean).map((l) => {
      const [name, ...vs] = l.split(/\s+/);
      return { source: 'brew', name: name!, version: vs[vs.length - 1] ?? '' };
    });
  }
}
