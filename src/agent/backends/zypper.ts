/**
 * zypper (SUSE, openSUSE). Scan = `zypper refresh`, `zypper --xmlout list-patches` (the needed patches: category, severity,
 * restart flags, CVEs), each patch's packages from zypper's own plan for it (`zypper --xmlout install
 * --dry-run -t patch <id>`: name, new and old EVR of every installed package the patch updates), and
 * `zypper --xmlout list-updates` for the upgrades no patch covers. A patch's PackageRefs are those packages
 * at the exact EVR (`[epoch:]version-release`, see rpm.ts), so install, verify and rollback work on
 * versions rpm reads back. Install = a dry run, then `zypper install -- name=evr …`. Rollback =
 * `zypper install --oldpackage -- name=previous …`.
 * `root` points zypper and rpm at another root (`--root`): tests use a throwaway one.
 */
import { XMLParser } from 'fast-xml-parser';
import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';
import { execFile, tail, type Exec } from '../exec';
import { normalizeEvr, rpmInstalledVersions, rpmInventory, rpmPatchId } from './rpm';
import type { Backend, OperationResult } from './types';

export interface ZypperPatch {
  name: string;
  /** security | recommended | optional | feature | document | yast */
  category: string;
  /** critical | important | moderate | low | unspecified */
  severity: string;
  /** needed | applied | not-needed | … */
  status: string;
  summary: string;
  repository: string;
  cves: string[];
  /** The patch asks for a reboot (`restart="true"`). */
  reboot: boolean;
  issued?: string;
}

export interface ZypperSolvable {
  type: string;
  name: string;
  edition: string;
  editionOld?: string;
  arch: string;
}

const xml = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  // every element that can repeat is an array, even when zypper printed one
  isArray: (name) => ['update', 'issue', 'solvable', 'message'].includes(name),
  // the attributes keep zypper's exact strings ("1:2.0-1" must not become a number)
  parseAttributeValue: false,
  parseTagValue: false,
  processEntities: true,
});

type Node = Record<string, unknown>;
const arr = (v: unknown): Node[] => (Array.isArray(v) ? (v as Node[]) : v && typeof v === 'object' ? [v as Node] : []);
const str = (v: unknown): string =>
  typeof v === 'string'
    ? v
    : v && typeof v === 'object' && typeof (v as Node)['#text'] === 'string'
      ? ((v as Node)['#text'] as string)
      : '';

/** The `<update>` elements of a `--xmlout list-patches` or `list-updates` stream, at any depth. */
function updates(doc: Node): Node[] {
  const out: Node[] = [];
  const walk = (n: unknown) => {
    for (const node of arr(n)) {
      for (const [k, v] of Object.entries(node)) {
        if (k === 'update') out.push(...arr(v));
        else if (v && typeof v === 'object') walk(v);
      }
    }
  };
  walk(doc);
  return out;
}

/**
 * Parses `zypper --xmlout list-patches` (zypper's XML output, `<update kind="patch" name status category
 * severity restart interactive>` with `<summary>`, `<source alias>`, `<issue-date>` and `<issue-list><issue
 * type="cve" id>`): the machine form; the table's columns vary between zypper versions and it carries no CVEs.
 */
export function parseZypperPatchesXml(text: string): ZypperPatch[] {
  return updates(xml.parse(text) as Node)
    .filter((u) => u.kind === 'patch')
    .map((u) => ({
      name: str(u.name),
      category: str(u.category),
      severity: str(u.severity),
      status: str(u.status),
      summary: str(u.summary).trim(),
      repository: str((u.source as Node | undefined)?.alias),
      cves: arr((u['issue-list'] as Node | undefined)?.issue)
        .filter((i) => i.type === 'cve')
        .map((i) => str(i.id)),
      reboot: u.restart === 'true',
      issued: str((u['issue-date'] as Node | undefined)?.text) || undefined,
    }));
}

/** Parses the `<install-summary>` of `zypper --xmlout install --dry-run`: what zypper would change. */
export function parseZypperInstallSummary(text: string): ZypperSolvable[] {
  const doc = xml.parse(text) as Node;
  const summary = (doc.stream as Node | undefined)?.['install-summary'] as Node | undefined;
  if (!summary) return [];
  const out: ZypperSolvable[] = [];
  for (const group of ['to-upgrade', 'to-downgrade', 'to-install', 'to-reinstall']) {
    for (const s of arr((summary[group] as Node | undefined)?.solvable)) {
      out.push({
        type: str(s.type),
        name: str(s.name),
        edition: normalizeEvr(str(s.edition)),
        editionOld: s['edition-old'] ? normalizeEvr(str(s['edition-old'])) : undefined,
        arch: str(s.arch),
      });
    }
  }
  return out;
}

/** Parses `zypper --xmlout list-updates`: `<update kind="package" name edition edition-old arch>`. */
export function parseZypperUpdatesXml(text: string): ZypperSolvable[] {
  return updates(xml.parse(text) as Node)
    .filter((u) => u.kind === 'package')
    .map((u) => ({
      type: 'package',
      name: str(u.name),
      edition: normalizeEvr(str(u.edition)),
      editionOld: u['edition-old'] ? normalizeEvr(str(u['edition-old'])) : undefined,
      arch: str(u.arch),
    }));
}

/** The `<message type="error">` texts of a `--xmlout` stream (what went wrong, in zypper's words). */
export function zypperXmlErrors(text: string): string[] {
  try {
    return arr(((xml.parse(text) as Node).stream as Node | undefined)?.message)
      .filter((m) => m.type === 'error')
      .map((m) => str(m).trim());
  } catch {
    return [];
  }
}

const TYPES: Record<string, string> = {
  security: 'security',
  recommended: 'bug_fix',
  optional: 'feature',
  feature: 'feature',
  document: 'update',
  yast: 'update',
};

const isNeeded = (status: string) => status === '' || status === 'needed';

/** One patch of the scan: the zypper patch with the packages zypper's plan for it updates. */
export function zypperPatchToFound(p: ZypperPatch, plan: ZypperSolvable[]): FoundPatch {
  return {
    patchId: p.name,
    title: p.summary || p.name,
    vendor: 'SUSE',
    product: p.repository,
    type: TYPES[p.category.toLowerCase()] ?? 'update',
    vendorSeverity: p.severity && p.severity !== 'unspecified' ? p.severity : undefined,
    severitySource: 'suse',
    cves: p.cves,
    rebootRequired: p.reboot,
    releasedAt: p.issued,
    packages: plan
      .filter((s) => s.type === 'package')
      .map((s) => ({ manager: 'zypper', name: s.name, version: s.edition })),
  };
}

export interface ZypperOptions {
  exec?: Exec;
  /** Another root for zypper and rpm (`--root`), tests; unset = the system. */
  root?: string;
  /** Run `zypper refresh` before a scan (default true). */
  refresh?: boolean;
  timeoutMs?: number;
}

/** zypper's exit codes that mean success: 0; 100/101 updates/security updates needed; 102 reboot needed; 103 restart zypper. */
const OK_CODES = [0, 100, 101, 102, 103];

export class ZypperBackend implements Backend {
  readonly name = 'zypper';
  private readonly exec: Exec;
  constructor(private readonly o: ZypperOptions = {}) {
    this.exec = o.exec ?? execFile;
  }

  private zypper(args: string[], timeoutMs = this.o.timeoutMs ?? 30 * 60_000) {
    const root = this.o.root ? ['--root', this.o.root] : [];
    return this.exec('zypper', ['--non-interactive', ...root, ...args], {
      env: { ...process.env, LC_ALL: 'C' },
      timeoutMs,
    });
  }

  private failure(what: string, r: { code: number; stdout: string; stderr: string }): string {
    const said = [...zypperXmlErrors(r.stdout), r.stderr.trim()].filter(Boolean).join(' ');
    return `zypper ${what} failed (${r.code}): ${tail(said || r.stdout, 800).trim()}`;
  }

  async scan(): Promise<FoundPatch[]> {
    if (this.o.refresh !== false) {
      const ref = await this.zypper(['refresh']);
      if (ref.code !== 0) throw new Error(this.failure('refresh', ref));
    }
    const lp = await this.zypper(['--xmlout', 'list-patches']);
    if (!OK_CODES.includes(lp.code)) throw new Error(this.failure('list-patches', lp));
    const out: FoundPatch[] = [];
    const covered = new Set<string>();
    for (const p of parseZypperPatchesXml(lp.stdout).filter((x) => isNeeded(x.status))) {
      // zypper's own plan for this one patch: which installed packages it updates, to which EVR
      const plan = await this.zypper(['--xmlout', 'install', '--dry-run', '-t', 'patch', '--', p.name]);
      if (!OK_CODES.includes(plan.code)) throw new Error(this.failure(`install --dry-run -t patch ${p.name}`, plan));
      const found = zypperPatchToFound(p, parseZypperInstallSummary(plan.stdout));
      for (const r of found.packages) covered.add(`${r.name}\t${r.version}`);
      out.push(found);
    }
    const lu = await this.zypper(['--xmlout', 'list-updates']);
    if (!OK_CODES.includes(lu.code)) throw new Error(this.failure('list-updates', lu));
    for (const u of parseZypperUpdatesXml(lu.stdout)) {
      const id = rpmPatchId(u.name, u.edition);
      if (covered.has(`${u.name}\t${u.edition}`) || out.some((f) => f.patchId === id)) continue;
      out.push({
        patchId: id,
        title: `${u.name} ${u.edition}`,
        vendor: 'SUSE',
        product: u.name,
        type: 'update',
        severitySource: 'suse',
        cves: [],
        rebootRequired: false,
        packages: [{ manager: 'zypper', name: u.name, version: u.edition }],
      });
    }
    return out;
  }

  private async installExact(specs: string[], oldPackage: boolean, verb: string): Promise<OperationResult> {
    // `--` ends zypper's options: a package name can never be read as one.
    const args = ['install', ...(oldPackage ? ['--oldpackage'] : []), '--', ...specs];
    const dry = await this.zypper(['install', '--dry-run', ...args.slice(1)]);
    if (!OK_CODES.includes(dry.code))
      return {
        ok: false,
        error: `dry run refused the change: ${this.failure('install --dry-run', dry)}`,
        log: tail(dry.stdout + dry.stderr),
      };
    const r = await this.zypper(args, this.o.timeoutMs ?? 60 * 60_000);
    const log = tail(dry.stdout + r.stdout + r.stderr);
    if (!OK_CODES.includes(r.code)) return { ok: false, error: this.failure(verb, r), log };
    return { ok: true, log, rebootRequired: r.code === 102 };
  }

  install(pkgs: PackageRef[]): Promise<OperationResult> {
    return this.installExact(
      pkgs.map((p) => (p.version ? `${p.name}=${p.version}` : p.name)),
      false,
      'install',
    );
  }

  rollback(pkgs: PackageRef[], previousVersions: Record<string, string>): Promise<OperationResult> {
    const specs = pkgs.filter((p) => previousVersions[p.name]).map((p) => `${p.name}=${previousVersions[p.name]}`);
    if (specs.length === 0)
      return Promise.resolve({
        ok: false,
        error: `no previous version known for ${pkgs.map((p) => p.name).join(', ')}: nothing to roll back to`,
        log: '',
      });
    return this.installExact(specs, true, 'install --oldpackage');
  }

  installedVersions(names: string[]): Promise<Map<string, string | null>> {
    return rpmInstalledVersions(this.exec, names, this.o.root);
  }

  inventory() {
    return rpmInventory(this.exec, 'zypper', this.o.root);
  }

  /** `zypper needs-rebooting` exits 102 when a reboot is needed (zypper ≥ 1.14.?); it reads the running system. */
  async rebootPending(): Promise<boolean> {
    if (this.o.root) return false;
    return (await this.exec('zypper', ['needs-rebooting'])).code === 102;
  }
}
