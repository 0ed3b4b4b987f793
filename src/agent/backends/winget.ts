/** winget: third-party applications on Windows. Scan = `winget upgrade` (table); install = exact `--id --version`. */
import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';
import { productForPackage } from '../catalog';
import { execFile, tail, type Exec } from '../exec';
import type { Backend, OperationResult } from './types';

export interface WingetRow {
  name: string;
  id: string;
  version: string;
  available: string;
  source: string;
}

/** Parses winget's fixed-width table by the header's column offsets (names may contain spaces). */
export function parseWingetTable(text: string): WingetRow[] {
  const lines = text.replace(/\r/g, '').split('\n');
  const h = lines.findIndex((l) => /^\S*Name\s+Id\s+Version/.test(l.replace(/^[^N]*(?=Name)/, '')));
  if (h < 0) return [];
  const header = lines[h]!.slice(lines[h]!.indexOf('Name'));
  const offset = lines[h]!.indexOf('Name');
  const start = (k: string) => header.indexOf(k);
  const cols = { id: start('Id'), version: start('Version'), available: start('Available'), source: start('Source') };
  const out: WingetRow[] = [];
  for (const raw of lines.slice(h + 2)) {
    const l = raw.slice(offset);
    if (!l.trim() || /^\d+ upgrades? available/.test(l.trim()) || /^-+$/.test(l.trim())) continue;
    if (l.length < cols.version) continue;
    const cut = (a: number, b: number) => (a < 0 ? '' : l.slice(a, b < 0 ? undefined : b).trim());
    out.push({
      name: cut(0, cols.id),
      id: cut(cols.id, cols.version),
      version: cut(cols.version, cols.available),
      available: cut(cols.available, cols.source),
      source: cols.source < 0 ? '' : cut(cols.source, -1),
    });
  }
  return out;
}

export function wingetToPatches(rows: WingetRow[]): FoundPatch[] {
  const seen = new Set<string>();
  return rows
    .filter((r) => r.id && r.available && !seen.has(`${r.id}@${r.available}`) && seen.add(`${r.id}@${r.available}`))
    .map((r) => {
      const product = productForPackage('winget', r.id);
      return {
        patchId: `third-party:${product?.key ?? r.id}:${r.available}`,
        title: `${r.name} ${r.version} → ${r.available}`,
        vendor: product?.vendor ?? r.id.split('.')[0] ?? 'unknown',
        product: product?.name ?? r.name,
        type: 'update',
        severitySource: 'vendor',
        cves: [],
        rebootRequired: false,
        packages: [{ manager: 'winget', name: r.id, version: r.available }],
      };
    });
}

export class WingetBackend implements Backend {
  readonly name = 'winget';
  constructor(private readonly exec: Exec = execFile) {}

  async scan(): Promise<FoundPatch[]> {
    const r = await this.exec('winget', ['upgrade', '--accept-source-agreements', '--disable-interactivity'], { timeoutMs: 10 * 60_000 });
    return wingetToPatches(parseWingetTable(r.stdout));
  }

  async install(pkgs: PackageRef[]): Promise<OperationResult> {
    const logs: string[] = [];
    for (const p of pkgs) {
      const args = ['upgrade', '--id', p.name, '--exact', '--silent', '--accept-package-agreements', '--accept-source-agreements', '--disable-interactivity', ...(p.version ? ['--version', p.version] : [])];
      const r = await this.exec('winget', args, { timeoutMs: 60 * 60_000 });
      logs.push(r.stdout);
      if (r.code !== 0) return { ok: false, error: `winget upgrade ${p.name} failed (${r.code}): ${tail(r.stdout, 500)}`, log: tail(logs.join('\n')) };
    }
    return { ok: true, log: tail(logs.join('\n')) };
  }

  async rollback(pkgs: PackageRef[], previousVersions: Record<string, string>): Promise<OperationResult> {
    const logs: string[] = [];
    for (const p of pkgs) {
      const v = previousVersions[p.name];
      if (!v) return { ok: false, error: `no previous version of ${p.name} known`, log: '' };
      const r = await this.exec('winget', ['install', '--id', p.name, '--exact', '--version', v, '--force', '--silent', '--accept-package-agreements', '--accept-source-agreements'], { timeoutMs: 60 * 60_000 });
      logs.push(r.stdout);
      if (r.code !== 0) return { ok: false, error: `winget install ${p.name} ${v} failed (${r.code})`, log: tail(logs.join('\n')) };
    }
    return { ok: true, log: tail(logs.join('\n')) };
  }

  async installedVersions(names: string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>(names.map((n) => [n, null]));
    for (const n of names) {
      const r = await this.exec('winget', ['list', '--id', n, '--exact', '--accept-source-agreements', '--disable-interactivity']);
      const row = parseWingetTable(r.stdout).find((x) => x.id === n);
      if (row) out.set(n, row.version);
    }
    return out;
  }

  async inventory() {
    const r = await this.exec('winget', ['list', '--accept-source-agreements', '--disable-interactivity'], { timeoutMs: 5 * 60_000 });
    return parseWingetTable(r.stdout).map((x) => ({ source: 'winget', name: x.id || x.name, version: x.version }));
  }
}
