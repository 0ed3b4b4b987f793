/**
 * dnf / yum (RHEL, Fedora, Rocky, Alma, openEuler), dnf 4 and dnf 5. Scan = fresh metadata (`--refresh`), the advisories
 * (`dnf updateinfo list` on dnf 4, `dnf advisory list` on dnf 5; then the same with `--with-cve` for their
 * CVEs) plus every upgrade no advisory covers (`check-update` / `check-upgrade`). A package's version is
 * rpm's EVR (`[epoch:]version-release`, see rpm.ts), the same string the install asks for and `rpm -q`
 * reads back. Install = a test transaction, then the exact `name-evr`. Rollback = `dnf downgrade` to the
 * previous EVRs (or `dnf history undo` of the transaction our install made).
 * `root` points dnf (`--installroot`) and rpm (`--root`) at another root: tests use a throwaway one.
 */
import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';
import { execFile, tail, type Exec } from '../exec';
import { parseNevra, rpmInstalledVersions, rpmInventory, rpmPatchId, type Nevra } from './rpm';
import type { Backend, OperationResult } from './types';

/** One row of an advisory listing: an advisory (or, in a `--with-cve` listing, a CVE) and one package it updates. */
export interface AdvisoryLine {
  /** RHSA-2024:1234 / FEDORA-2024-… in an advisory listing; CVE-2022-3080 in a `--with-cve` one. */
  id: string;
  /** security | bugfix | enhancement | newpackage | unknown (dnf 4) / unspecified (dnf 5). */
  type: string;
  /** Critical | Important | Moderate | Low, '' when the advisory has none. */
  severity: string;
  pkg: Nevra;
}

/** An upgrade `check-update` lists: the newest version the repositories have. */
export interface RpmUpgrade {
  name: string;
  arch: string;
  evr: string;
  repo: string;
}

const DNF4_TYPES = new Set(['bugfix', 'enhancement', 'security', 'newpackage', 'unknown']);

/**
 * Parses `dnf updateinfo list [--with-cve]` (dnf 4) and `yum updateinfo list` (yum 3, RHEL 7): one line per
 * advisory and package, `<id> <label> <nevra>`, where the label is `<Severity>/Sec.` for a security advisory
 * (`Unknown/Sec.` without a severity) and else the type word: bugfix, enhancement, newpackage, unknown
 * (dnf's TYPE2LABEL / SECURITY2LABEL). With `-v` dnf adds the date: `<id> <label> <nevra> <date> <time>`.
 */
export function parseUpdateInfoList(text: string): AdvisoryLine[] {
  const out: AdvisoryLine[] = [];
  for (const raw of text.split('\n')) {
    const f = raw.trim().split(/\s+/);
    if (f.length < 3) continue;
    const [id, label, nevra] = f as [string, string, string];
    const sec = /^(\w*)\/Sec\.$/.exec(label);
    const type = sec ? 'security' : label.toLowerCase();
    if (!sec && !DNF4_TYPES.has(type)) continue;
    const pkg = parseNevra(nevra);
    if (!pkg) continue;
    const severity = sec && sec[1] !== 'Unknown' ? sec[1]! : '';
    out.push({ id, type, severity, pkg });
  }
  return out;
}

const DNF5_TYPES = ['security', 'bugfix', 'enhancement', 'newpackage', 'unspecified'];
const DNF5_SEVERITIES = ['Critical', 'Important', 'Moderate', 'Low', 'None'];
/** dnf 5 prints the Type and Severity columns truncated when the terminal is narrow (`secu`, `Importan`). */
const completeWord = (words: string[], cell: string): string | undefined =>
  words.find((w) => w.toLowerCase().startsWith(cell.toLowerCase()));

/**
 * Parses dnf 5's `advisory list [--with-cve]` table (libdnf5-cli/output/advisorylist.cpp): a header
 * `Name|CVE Type Severity Package Issued`, then `<id> <type> <severity> <nevra> <date> <time>` per advisory
 * and package. Type and Severity may come truncated; Package is right-aligned. Severity `None` means none.
 */
export function parseDnf5AdvisoryList(text: string): AdvisoryLine[] {
  const out: AdvisoryLine[] = [];
  let header = false;
  for (const raw of text.split('\n')) {
    const f = raw.trim().split(/\s+/);
    if (/^(Name|CVE|Bugzilla)$/.test(f[0] ?? '') && f[1] === 'Type' && f[2] === 'Severity' && f[3] === 'Package') {
      header = true;
      continue;
    }
    if (!header || f.length < 4) continue;
    const [id, typeCell, sevCell, nevra] = f as [string, string, string, string];
    const type = completeWord(DNF5_TYPES, typeCell);
    const pkg = parseNevra(nevra);
    if (!type || !pkg) continue;
    const sev = completeWord(DNF5_SEVERITIES, sevCell) ?? sevCell;
    out.push({ id, type, severity: sev === 'None' ? '' : sev, pkg });
  }
  return out;
}

/**
 * Parses `dnf check-update` (dnf 4, yum) / `dnf check-upgrade` (dnf 5): `<name>.<arch> <[epoch:]version-release> <repo>`
 * per upgrade. Stops at "Obsoleting Packages" (a second list of what replaces what, not upgrades).
 */
export function parseCheckUpdate(text: string): RpmUpgrade[] {
  const out: RpmUpgrade[] = [];
  for (const raw of text.split('\n')) {
    if (/^Obsoleting Packages/i.test(raw.trim())) break;
    const f = raw.trim().split(/\s+/);
    if (f.length !== 3) continue;
    const [na, evr, repo] = f as [string, string, string];
    const dot = na.lastIndexOf('.');
    if (dot <= 0 || !/^(\d+:)?[^-:\s]+-[^-:\s]+$/.test(evr)) continue;
    out.push({ name: na.slice(0, dot), arch: na.slice(dot + 1), evr: evr.replace(/^0:/, ''), repo });
  }
  return out;
}

const TYPE: Record<string, string> = {
  security: 'security',
  bugfix: 'bug_fix',
  enhancement: 'feature',
  newpackage: 'feature',
};

const rebootFor = (name: string) => /^(kernel|glibc|systemd|linux-firmware)(-|$)/.test(name);

/**
 * Patches from an advisory listing, its CVE listing and the upgrades: one patch per advisory with the
 * packages it updates here and the CVEs it fixes; every upgrade no advisory covers (same name and EVR) is a
 * patch of its own (`rpm:<name>:<evr>`, type update). A CVE line whose package no advisory lists (a listing
 * of CVEs alone, like openEuler's `hot-updateinfo list cves`) also becomes a patch of its package.
 */
export function toPatches(
  advisories: AdvisoryLine[],
  cves: AdvisoryLine[],
  upgrades: RpmUpgrade[],
  manager = 'dnf',
  vendor = 'Red Hat',
): FoundPatch[] {
  const byId = new Map<string, FoundPatch>();
  const covered = new Set<string>();
  const addPkg = (p: FoundPatch, pkg: Nevra) => {
    if (!p.packages.some((r) => r.name === pkg.name && r.version === pkg.evr))
      p.packages.push({ manager, name: pkg.name, version: pkg.evr });
    covered.add(`${pkg.name}\t${pkg.evr}`);
    p.rebootRequired ||= rebootFor(pkg.name);
  };
  /** A new patch from an advisory or CVE line: its type and severity as dnf prints them, no packages yet. */
  const patchOf = (patchId: string, title: string, line: AdvisoryLine): FoundPatch => ({
    patchId,
    title,
    vendor,
    product: line.pkg.name,
    type: TYPE[line.type] ?? 'update',
    vendorSeverity: line.severity || undefined,
    severitySource: 'redhat',
    cves: [],
    rebootRequired: false,
    packages: [],
  });
  for (const a of advisories) {
    let p = byId.get(a.id);
    if (!p) {
      p = patchOf(a.id, `${a.id} ${a.pkg.name} ${a.pkg.evr}`, a);
      byId.set(a.id, p);
    }
    addPkg(p, a.pkg);
  }
  for (const c of cves) {
    const sameNevra = advisories.filter(
      (a) => a.pkg.name === c.pkg.name && a.pkg.evr === c.pkg.evr && a.pkg.arch === c.pkg.arch,
    );
    const owners = sameNevra.filter((a) => a.type === c.type && a.severity === c.severity);
    const targets = (owners.length > 0 ? owners : sameNevra).map((a) => byId.get(a.id)!);
    if (targets.length === 0) {
      const id = rpmPatchId(c.pkg.name, c.pkg.evr);
      const p = byId.get(id) ?? patchOf(id, `${c.pkg.name} ${c.pkg.evr}`, c);
      byId.set(id, p);
      addPkg(p, c.pkg);
      targets.push(p);
    }
    for (const t of targets) if (!t.cves.includes(c.id)) t.cves.push(c.id);
  }
  for (const u of upgrades) {
    if (covered.has(`${u.name}\t${u.evr}`)) continue;
    const id = rpmPatchId(u.name, u.evr);
    const p = byId.get(id);
    if (p) continue; // another architecture of the same upgrade
    byId.set(id, {
      patchId: id,
      title: `${u.name} ${u.evr}`,
      vendor,
      product: u.name,
      type: 'update',
      severitySource: 'redhat',
      cves: [],
      rebootRequired: rebootFor(u.name),
      packages: [{ manager, name: u.name, version: u.evr }],
    });
  }
  return [...byId.values()];
}

export interface DnfOptions {
  exec?: Exec;
  /** The dnf program (dnf, yum, dnf5); its generation is read from `--version`. */
  bin?: string;
  /** Another root for dnf (`--installroot`) and rpm (`--root`), tests; unset = the system. */
  root?: string;
  /** Expire the cached metadata before a scan (`--refresh` on its first command; default true), as apt's backend runs `apt-get update`. */
  refresh?: boolean;
  timeoutMs?: number;
}

export class DnfBackend implements Backend {
  readonly name = 'dnf';
  private readonly exec: Exec;
  private readonly bin: string;
  private lastTransaction: string | null = null;
  private generation: Promise<4 | 5> | null = null;
  constructor(private readonly o: DnfOptions = {}) {
    this.exec = o.exec ?? execFile;
    this.bin = o.bin ?? 'dnf';
  }

  private dnf(args: string[], timeoutMs = this.o.timeoutMs ?? 30 * 60_000) {
    const root = this.o.root ? [`--installroot=${this.o.root}`] : [];
    return this.exec(this.bin, [...root, ...args], { env: { ...process.env, LC_ALL: 'C' }, timeoutMs });
  }

  /** dnf 5 opens `--version` with `dnf5 version 5.…`; dnf 4 prints the bare number, yum 3 too. */
  private dnfGeneration(): Promise<4 | 5> {
    this.generation ??= this.exec(this.bin, ['--version'], { env: { ...process.env, LC_ALL: 'C' } }).then((r) =>
      /\bdnf5\b/.test(r.stdout + r.stderr) ? 5 : 4,
    );
    return this.generation;
  }

  async scan(): Promise<FoundPatch[]> {
    const five = (await this.dnfGeneration()) === 5;
    const list = five ? ['advisory', 'list', '--available'] : ['-q', 'updateinfo', 'list', '--available'];
    const parse = five ? parseDnf5AdvisoryList : parseUpdateInfoList;
    const adv = await this.dnf([...(this.o.refresh === false ? [] : ['--refresh']), ...list]);
    if (adv.code !== 0)
      throw new Error(
        `${this.bin} ${list.join(' ')} failed (${adv.code}): ${tail(adv.stderr || adv.stdout, 1000).trim()}`,
      );
    const cve = await this.dnf([...list, '--with-cve']);
    if (cve.code !== 0)
      throw new Error(
        `${this.bin} ${list.join(' ')} --with-cve failed (${cve.code}): ${tail(cve.stderr || cve.stdout, 1000).trim()}`,
      );
    // check-update / check-upgrade: 100 = upgrades listed, 0 = none, anything else = an error.
    const check = five ? ['check-upgrade'] : ['-q', 'check-update'];
    const up = await this.dnf(check);
    if (up.code !== 0 && up.code !== 100)
      throw new Error(
        `${this.bin} ${check.join(' ')} failed (${up.code}): ${tail(up.stderr || up.stdout, 1000).trim()}`,
      );
    return toPatches(parse(adv.stdout), parse(cve.stdout), parseCheckUpdate(up.stdout));
  }

  private async transaction(verb: 'install' | 'downgrade', specs: string[]): Promise<OperationResult> {
    // `--` ends dnf's options: a package name can never be read as one (dnf refuses it as an argument).
    const test = await this.dnf(['-y', '--setopt=tsflags=test', verb, '--', ...specs]);
    if (test.code !== 0)
      return {
        ok: false,
        error: `test transaction refused the change: ${tail(test.stderr || test.stdout, 800).trim()}`,
        log: tail(test.stdout + test.stderr),
      };
    const run = await this.dnf(['-y', verb, '--', ...specs], this.o.timeoutMs ?? 60 * 60_000);
    const log = tail(run.stdout + run.stderr);
    if (run.code !== 0)
      return {
        ok: false,
        error: `${this.bin} ${verb} failed (${run.code}): ${tail(run.stderr || run.stdout, 800).trim()}`,
        log,
      };
    return { ok: true, log };
  }

  async install(pkgs: PackageRef[]): Promise<OperationResult> {
    const res = await this.transaction(
      'install',
      pkgs.map((p) => (p.version ? `${p.name}-${p.version}` : p.name)),
    );
    if (!res.ok) return res;
    const hist = await this.dnf(['-q', 'history', 'list']);
    // newest transaction first: "ID | Command line | Date and time | Action(s) | Altered"
    this.lastTransaction = /^\s*(\d+)\s*\|/m.exec(hist.stdout)?.[1] ?? null;
    return { ...res, rebootRequired: await this.rebootPending() };
  }

  async rollback(pkgs: PackageRef[], previousVersions: Record<string, string>): Promise<OperationResult> {
    const specs = pkgs.filter((p) => previousVersions[p.name]).map((p) => `${p.name}-${previousVersions[p.name]}`);
    if (specs.length > 0) return this.transaction('downgrade', specs);
    if (!this.lastTransaction)
      return { ok: false, error: 'no previous version known and no transaction of ours to undo', log: '' };
    const r = await this.dnf(['-y', 'history', 'undo', this.lastTransaction], this.o.timeoutMs ?? 60 * 60_000);
    return {
      ok: r.code === 0,
      error: r.code === 0 ? undefined : `${this.bin} history undo failed: ${tail(r.stderr, 800)}`,
      log: tail(r.stdout + r.stderr),
    };
  }

  installedVersions(names: string[]): Promise<Map<string, string | null>> {
    return rpmInstalledVersions(this.exec, names, this.o.root);
  }

  inventory() {
    return rpmInventory(this.exec, 'dnf', this.o.root);
  }

  /** `needs-restarting -r` (dnf-utils): exit 1 = a reboot is needed. It reads the running system, so not for another root. */
  async rebootPending(): Promise<boolean> {
    if (this.o.root) return false;
    return (await this.exec('needs-restarting', ['-r'])).code === 1;
  }
}
