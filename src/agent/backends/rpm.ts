/**
 * What dnf and zypper share: rpm's package identity. A version in a PackageRef of these backends is rpm's
 * EVR as dnf and zypper print it — `[epoch:]version-release`, the epoch only when it is not 0 — so the
 * version a scan reports, the one the install asks for, and the one `rpm -q` reads back are one string.
 */
import type { Exec } from '../exec';

export interface Nevra {
  name: string;
  /** '' when the package has no epoch (or epoch 0). */
  epoch: string;
  version: string;
  release: string;
  arch: string;
  /** `[epoch:]version-release`, the form every PackageRef of dnf and zypper carries. */
  evr: string;
}

/** `[epoch:]version-release` with epoch 0 / "(none)" left out. */
export function evrOf(epoch: string, version: string, release: string): string {
  const e = epoch === '' || epoch === '0' || epoch === '(none)' ? '' : `${epoch}:`;
  return `${e}${version}-${release}`;
}

/** Normalises an EVR string as a tool printed it (`0:1.2-3` → `1.2-3`). */
export function normalizeEvr(evr: string): string {
  return evr.replace(/^0:/, '');
}

/**
 * Splits `name-[epoch:]version-release.arch`, the form `dnf updateinfo list` prints
 * (`openssl-libs-1:3.0.7-25.el9_3.x86_64`). Returns null for a string that is not a NEVRA.
 */
export function parseNevra(nevra: string): Nevra | null {
  const dot = nevra.lastIndexOf('.');
  if (dot <= 0) return null;
  const arch = nevra.slice(dot + 1);
  const nevr = nevra.slice(0, dot);
  const r = nevr.lastIndexOf('-');
  const v = r > 0 ? nevr.lastIndexOf('-', r - 1) : -1;
  if (v <= 0 || !arch) return null;
  const name = nevr.slice(0, v);
  const ev = nevr.slice(v + 1, r);
  const release = nevr.slice(r + 1);
  const colon = ev.indexOf(':');
  const epoch = colon >= 0 ? ev.slice(0, colon) : '';
  const version = colon >= 0 ? ev.slice(colon + 1) : ev;
  if (!version || !release || (epoch && !/^\d+$/.test(epoch))) return null;
  return { name, epoch: epoch === '0' ? '' : epoch, version, release, arch, evr: evrOf(epoch, version, release) };
}

/** The id of an upgrade no advisory or patch covers. */
export function rpmPatchId(name: string, evr: string): string {
  return `rpm:${name}:${evr}`;
}

/** `rpm --root <root>` when the backend works on another root (tests); nothing for the system. */
export const rpmRootArgs = (root: string | undefined): string[] => (root ? ['--root', root] : []);

/**
 * Installed EVR of each name (`rpm -q`), null when not installed. When several instances are installed
 * (an install-only package such as the kernel, or two architectures), the last one rpm lists is taken.
 */
export async function rpmInstalledVersions(
  exec: Exec,
  names: string[],
  root?: string,
): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>(names.map((n) => [n, null]));
  if (names.length === 0) return out;
  // `--` ends rpm's options: a name can never be read as one.
  const r = await exec(
    'rpm',
    [...rpmRootArgs(root), '-q', '--qf', '%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\n', '--', ...names],
    {
      env: { ...process.env, LC_ALL: 'C' },
    },
  );
  for (const line of r.stdout.split('\n')) {
    const [n, e, v, rel] = line.split('\t');
    if (n && v && rel !== undefined && out.has(n)) out.set(n, evrOf(e ?? '', v, rel));
  }
  return out;
}

export async function rpmInventory(exec: Exec, source: string, root?: string) {
  const r = await exec(
    'rpm',
    [...rpmRootArgs(root), '-qa', '--qf', '%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{VENDOR}\\n'],
    {
      env: { ...process.env, LC_ALL: 'C' },
    },
  );
  return r.stdout
    .split('\n')
    .map((l) => l.split('\t'))
    .filter((f) => f[0] && f[2])
    .map((f) => ({
      source,
      name: f[0]!,
      version: evrOf(f[1] ?? '', f[2]!, f[3] ?? ''),
      vendor: f[4] && f[4] !== '(none)' ? f[4] : undefined,
    }));
}
