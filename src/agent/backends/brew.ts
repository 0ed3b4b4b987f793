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
  const read = (e: RawOutdatedEntry, kind: 'formula' | 'cask') => ({
    ...e,
    installed_versions: versionList(e.installed_versions),
    kind,
  });
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
        packages: [
          { manager: 'brew', name: e.kind === 'cask' ? `cask:${e.name}` : e.name, version: e.current_version },
        ],
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

  /**
   * Homebrew installs only the version its formula or cask offers now (`brew upgrade` has no version argument), so
   * the version asked for is checked against `brew outdated` first: a package already at that version is done, one
   * offered at another version is refused (the approval was for that version, not the newer one), before anything
   * runs. Names follow `--`, so none can act as an option (Homebrew parses with Ruby's OptionParser, which stops there).
   */
  async install(pkgs: PackageRef[]): Promise<OperationResult> {
    const out = await this.exec('brew', ['outdated', '--json=v2'], { timeoutMs: 10 * 60_000 });
    if (out.code !== 0)
      return {
        ok: false,
        error: `brew outdated failed (${out.code}): ${tail(out.stderr, 500)}`,
        log: tail(out.stdout + out.stderr),
      };
    const offered = new Map(
      parseBrewOutdated(out.stdout).map((e) => [e.kind === 'cask' ? `cask:${e.name}` : e.name, e.current_version]),
    );
    const installed = await this.installedVersions(pkgs.filter((p) => !offered.has(p.name)).map((p) => p.name));
    const todo: PackageRef[] = [];
    for (const p of pkgs) {
      const now = offered.get(p.name);
      if (now === undefined) {
        if (p.version && installed.get(p.name) === p.version) continue;
        return {
          ok: false,
          error: `Homebrew offers no upgrade of ${p.name}${p.version ? ` to ${p.version}` : ''} (installed: ${installed.get(p.name) ?? 'nothing'}); rescan this endpoint`,
          log: '',
        };
      }
      if (p.version && now !== p.version) {
        return {
          ok: false,
          error: `Homebrew now offers ${p.name} ${now}, not the ${p.version} that was approved, and cannot install another version; rescan and approve ${now}`,
          log: '',
        };
      }
      todo.push(p);
    }
    const formulae = todo.filter((p) => !p.name.startsWith('cask:')).map((p) => p.name);
    const casks = todo.filter((p) => p.name.startsWith('cask:')).map((p) => p.name.slice(5));
    const logs: string[] = [];
    for (const [args, list] of [
      [['upgrade', '--formula'], formulae],
      [['upgrade', '--cask'], casks],
    ] as const) {
      if (list.length === 0) continue;
      const r = await this.exec('brew', [...args, '--', ...list], { timeoutMs: 60 * 60_000 });
      logs.push(r.stdout + r.stderr);
      if (r.code !== 0)
        return {
          ok: false,
          error: `brew ${args.join(' ')} failed (${r.code}): ${tail(r.stderr, 500)}`,
          log: tail(logs.join('\n')),
        };
    }
    return { ok: true, log: tail(logs.join('\n')) };
  }

  async rollback(pkgs: PackageRef[]): Promise<OperationResult> {
    return {
      ok: false,
      error: `Homebrew keeps no older bottles to return to for ${pkgs.map((p) => p.name).join(', ')}; pin and reinstall the earlier version by hand`,
      log: '',
    };
  }

  async installedVersions(names: string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>(names.map((n) => [n, null]));
    if (names.length === 0) return out;
    const r = await this.exec('brew', ['list', '--versions', '--', ...names.map((n) => n.replace(/^cask:/, ''))]);
    for (const line of r.stdout.split('\n')) {
      const [n, ...vs] = line.trim().split(/\s+/);
      const key = names.find((x) => x.replace(/^cask:/, '') === n);
      if (key && vs.length) out.set(key, vs[vs.length - 1]!);
    }
    return out;
  }

  async inventory() {
    const r = await this.exec('brew', ['list', '--versions']);
    return r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [name, ...vs] = l.split(/\s+/);
        return { source: 'brew', name: name!, version: vs[vs.length - 1] ?? '' };
      });
  }
}
