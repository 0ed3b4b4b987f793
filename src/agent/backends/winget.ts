/**
 * winget: third-party applications on Windows. Scan and installed versions come from the Microsoft.WinGet.Client
 * PowerShell module's package objects as JSON (`Get-WinGetPackage`: Id, Name, InstalledVersion, AvailableVersions,
 * IsUpdateAvailable, IsPinned), which read the same in every Windows language. Where that module is not installed,
 * the `winget upgrade` / `winget list` console table is read instead: its headers are translated, so only the
 * languages we have real output for are read (English, German, French), and any other is a visible error.
 * Install = `winget upgrade --id <id> --exact --version <version>` (exit code, not text).
 */
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

/** The column titles winget prints, per column, in the languages we have real output of (see the fixtures README). */
const TITLES: Record<keyof WingetRow | 'match', string[]> = {
  name: ['Name', 'Nom'],
  id: ['Id', 'ID', 'Kennung'],
  version: ['Version'],
  available: ['Available', 'Verfügbar', 'Disponible'],
  source: ['Source', 'Quelle'],
  match: ['Match', 'Übereinstimmung'],
};

export class WingetLanguageError extends Error {
  constructor(readonly header: string) {
    super(
      `winget printed its table with the header "${header}", in a language patchops does not read (it reads English, German and French); ` +
        'install the Microsoft.WinGet.Client PowerShell module, which patchops reads in any language, or set the display language of the account the agent runs as to English',
    );
  }
}

/** "…": how winget ends a value it cut to fit its column. */
const CUT = /…$/;

export interface WingetTable {
  rows: WingetRow[];
  /** Rows whose id winget cut short: never taken as ids. */
  truncated: string[];
}

/**
 * Reads the tables of `winget upgrade|list|search` output by the column offsets of each header (the line above the
 * dashes). A table ends at the first line that does not fit its grid, so the "N upgrades available." count, the
 * "package(s) have version numbers that cannot be determined" note and the heading of the next table are not rows.
 * `winget upgrade` prints a second table of packages that "require explicit targeting" (RequireExplicitUpgrade):
 * real upgrades, which patchops installs by explicit id anyway, so they are read like the first (pinned packages
 * appear in neither). No table (winget found nothing, in any language) gives no rows; a header in a language we do
 * not read throws.
 */
export function readWingetTable(text: string): WingetTable {
  const lines = text.replace(/\r\n/g, '\n').replace(/\r/g, '\n').split('\n');
  const out: WingetTable = { rows: [], truncated: [] };
  let i = 0;
  for (;;) {
    const h = lines.findIndex((l, k) => k >= i && l.trim() !== '' && /^-{10,}$/.test((lines[k + 1] ?? '').trim()));
    if (h < 0) return out;
    i = readOneTable(lines, h, out);
  }
}

/** Reads the table whose header is lines[h] into `out`; returns the index of the first line after it. */
function readOneTable(lines: string[], h: number, out: WingetTable): number {
  const header = lines[h]!;
  const cols: Partial<Record<keyof typeof TITLES, number>> = {};
  for (const m of header.matchAll(/\S+/g)) {
    const kind = (Object.keys(TITLES) as Array<keyof typeof TITLES>).find(
      (k) => TITLES[k].includes(m[0]) && cols[k] === undefined,
    );
    if (!kind) throw new WingetLanguageError(header.trim());
    cols[kind] = m.index;
  }
  const name = cols.name;
  const version = cols.version;
  if (name === undefined || cols.id === undefined || version === undefined)
    throw new WingetLanguageError(header.trim());
  const starts = Object.values(cols).sort((a, b) => a - b);
  const cell = (l: string, k: keyof typeof TITLES) => {
    const a = cols[k];
    if (a === undefined) return '';
    return l
      .slice(
        a,
        starts.find((s) => s > a),
      )
      .trim();
  };
  let k = h + 2;
  for (; k < lines.length; k++) {
    const line = lines[k]!;
    if (line.trim() === '' || line.length <= version) break;
    // Every column a row reaches starts after a space: prose (a count, a note, a heading) does not line up.
    if (starts.some((s) => s > name && s < line.length && line[s - 1] !== ' ')) break;
    const row: WingetRow = {
      name: cell(line, 'name'),
      id: cell(line, 'id'),
      version: cell(line, 'version'),
      available: cell(line, 'available'),
      source: cell(line, 'source'),
    };
    if (!row.id || !row.version) break;
    if (CUT.test(row.id)) out.truncated.push(row.id);
    else out.rows.push(row);
  }
  return k;
}

/** The rows of readWingetTable (ids winget cut short are left out). */
export function parseWingetTable(text: string): WingetRow[] {
  return readWingetTable(text).rows;
}

/** One package object as our PowerShell line prints it (properties of Microsoft.WinGet.Client's PSInstalledCatalogPackage). */
export interface WingetPackageObject {
  Id: string;
  Name: string;
  InstalledVersion: string;
  /** Newest first, as winget orders them. */
  AvailableVersions: string[];
  IsUpdateAvailable: boolean;
  Source: string;
  IsPinned?: boolean;
}

/** Reads our script's JSON: every installed package; `available` is the newest version when an update is offered. */
export function parseWingetPackages(json: string): Array<WingetRow & { updatable: boolean; pinned: boolean }> {
  const v = JSON.parse(json.trim() || '[]') as WingetPackageObject | WingetPackageObject[];
  return (Array.isArray(v) ? v : [v]).map((p) => ({
    name: p.Name ?? '',
    id: p.Id,
    version: p.InstalledVersion ?? '',
    available: p.IsUpdateAvailable ? (p.AvailableVersions?.[0] ?? '') : '',
    source: p.Source ?? '',
    updatable: Boolean(p.IsUpdateAvailable),
    pinned: Boolean(p.IsPinned),
  }));
}

/** Every installed package as JSON, from Microsoft.WinGet.Client (a missing module fails with its own message). */
export const WINGET_PACKAGES_SCRIPT = [
  "$ErrorActionPreference = 'Stop'",
  '[Console]::OutputEncoding = [System.Text.Encoding]::UTF8',
  'Import-Module Microsoft.WinGet.Client',
  '$list = @(Get-WinGetPackage | ForEach-Object {',
  '  $p = $_',
  '  [pscustomobject]@{ Id = $p.Id; Name = $p.Name; InstalledVersion = $p.InstalledVersion; AvailableVersions = @($p.AvailableVersions);',
  "    IsUpdateAvailable = [bool]$p.IsUpdateAvailable; Source = $(try { $p.Source } catch { '' }); IsPinned = [bool]$p.IsPinned }",
  '})',
  'ConvertTo-Json -InputObject $list -Depth 3 -Compress',
].join('\n');

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

const COMMON = ['--accept-source-agreements', '--disable-interactivity'];

export class WingetBackend implements Backend {
  readonly name = 'winget';
  constructor(private readonly exec: Exec = execFile) {}

  /** Every installed package from Microsoft.WinGet.Client, or the reason it could not be asked. */
  private async packages(): Promise<ReturnType<typeof parseWingetPackages> | { unavailable: string }> {
    const r = await this.exec(
      'powershell.exe',
      ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-Command', WINGET_PACKAGES_SCRIPT],
      { timeoutMs: 10 * 60_000 },
    );
    if (r.code !== 0) return { unavailable: tail(r.stderr || r.stdout, 400).trim() || `exit ${r.code}` };
    try {
      return parseWingetPackages(r.stdout);
    } catch (e) {
      return { unavailable: `its output was not JSON (${(e as Error).message})` };
    }
  }

  /** The console table, with the module's failure named if the table cannot be read either. */
  private async table(args: string[], why: string): Promise<WingetTable> {
    const r = await this.exec('winget', [...args, ...COMMON], { timeoutMs: 10 * 60_000 });
    try {
      return readWingetTable(r.stdout);
    } catch (e) {
      throw new Error(`${(e as Error).message} (Microsoft.WinGet.Client could not be used: ${why})`, { cause: e });
    }
  }

  async scan(): Promise<FoundPatch[]> {
    const pkgs = await this.packages();
    if (!('unavailable' in pkgs)) return wingetToPatches(pkgs.filter((p) => p.updatable && !p.pinned));
    return wingetToPatches((await this.table(['upgrade'], pkgs.unavailable)).rows);
  }

  async install(pkgs: PackageRef[]): Promise<OperationResult> {
    const logs: string[] = [];
    for (const p of pkgs) {
      if (p.name.startsWith('-'))
        return {
          ok: false,
          error: `refusing the winget id "${p.name}": it starts with "-"`,
          log: tail(logs.join('\n')),
        };
      const args = [
        'upgrade',
        '--id',
        p.name,
        '--exact',
        '--silent',
        '--accept-package-agreements',
        ...COMMON,
        ...(p.version ? ['--version', p.version] : []),
      ];
      const r = await this.exec('winget', args, { timeoutMs: 60 * 60_000 });
      logs.push(r.stdout);
      if (r.code !== 0)
        return {
          ok: false,
          error: `winget upgrade ${p.name} failed (${r.code}): ${tail(r.stdout, 500)}`,
          log: tail(logs.join('\n')),
        };
    }
    return { ok: true, log: tail(logs.join('\n')) };
  }

  async rollback(pkgs: PackageRef[], previousVersions: Record<string, string>): Promise<OperationResult> {
    const logs: string[] = [];
    for (const p of pkgs) {
      const v = previousVersions[p.name];
      if (!v) return { ok: false, error: `no previous version of ${p.name} known`, log: '' };
      if (p.name.startsWith('-'))
        return { ok: false, error: `refusing the winget id "${p.name}": it starts with "-"`, log: '' };
      const r = await this.exec(
        'winget',
        [
          'install',
          '--id',
          p.name,
          '--exact',
          '--version',
          v,
          '--force',
          '--silent',
          '--accept-package-agreements',
          ...COMMON,
        ],
        { timeoutMs: 60 * 60_000 },
      );
      logs.push(r.stdout);
      if (r.code !== 0)
        return { ok: false, error: `winget install ${p.name} ${v} failed (${r.code})`, log: tail(logs.join('\n')) };
    }
    return { ok: true, log: tail(logs.join('\n')) };
  }

  async installedVersions(names: string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>(names.map((n) => [n, null]));
    const pkgs = await this.packages();
    if (!('unavailable' in pkgs)) {
      for (const n of names) out.set(n, pkgs.find((p) => p.id === n)?.version || null);
      return out;
    }
    for (const n of names) {
      if (n.startsWith('-')) continue;
      const row = (await this.table(['list', '--id', n, '--exact'], pkgs.unavailable)).rows.find((x) => x.id === n);
      if (row) out.set(n, row.version);
    }
    return out;
  }

  async inventory() {
    const pkgs = await this.packages();
    const rows = 'unavailable' in pkgs ? (await this.table(['list'], pkgs.unavailable)).rows : pkgs;
    return rows.map((x) => ({ source: 'winget', name: x.id || x.name, version: x.version }));
  }
}
