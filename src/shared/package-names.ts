/**
 * The grammar of package names and versions per backend. The gateway checks every package an agent reports
 * (src/db/patch-reports.ts, scan results) and the agent checks every package a job names before any backend runs
 * (src/agent/runner.ts): a name is handed to apt, dnf, zypper, winget, brew, softwareupdate, PowerShell or fwupdmgr
 * as a command-line argument, so a name such as `-oDPkg::Pre-Invoke::=<command>` would be read as an option.
 * Nothing here allows a leading '-', whitespace (softwareupdate labels excepted: single inner spaces, they are
 * part of Apple's labels) or control characters. Dependency-free: the agent imports it.
 *
 * Sources of the grammars:
 * - Debian Policy §5.6.1 (Source/Package: lower case letters, digits, `+ - .`, at least two characters, starting
 *   with an alphanumeric) and §5.6.12 (Version: `[epoch:]upstream_version[-debian_revision]`; the epoch an
 *   unsigned integer; upstream starts with a digit and has alphanumerics and `. + - ~`, a hyphen only when there
 *   is a revision; the revision alphanumerics and `+ . ~`). apt's `name:arch` form carries a Debian architecture.
 * - RPM: names take alphanumerics and `. - _ +` and may not start with `-` (rpmbuild's ALLOWED_CHARS_NAME, less the
 *   `%{}` it tolerates only for unexpanded macros); rpm-version(7): `[EPOCH:]VERSION[-RELEASE]`, VERSION and
 *   RELEASE alphanumerics with `. _ +` and the operators `~ ^`, never `-`.
 * - zypper patch ids as `zypper list-patches` prints them (SUSE-SLE-Module-Basesystem-15-SP5-2024-1234,
 *   openSUSE-SLE-15.5-2024-1234): alphanumerics and `. _ + -`, starting with an alphanumeric.
 * - winget: the manifest schema's PackageIdentifier (2 to 8 dot-separated parts of 1-32 characters, none of
 *   `. \ / : * ? " < > |`, whitespace or control characters; at most 128) and PackageVersion (none of
 *   `\ / : * ? " < > |` or control characters; at most 128), and here no leading '-' and no whitespace.
 * - Homebrew: formula and cask tokens are lower case alphanumerics and `- _ . + @`, optionally tap-qualified
 *   (`user/tap/name`); casks are named `cask:<token>` in our package refs (src/agent/backends/brew.ts).
 * - softwareupdate: labels as `softwareupdate --list` prints them (`macOS Sonoma 14.2-23C64`,
 *   `Command Line Tools for Xcode-15.1`).
 * - Windows Update: `KB<digits>`, or `WU-<UpdateID GUID>` for updates without a KB article.
 * - fwupd: device ids are 40 hex digits (a SHA-1), GUIDs the usual 8-4-4-4-12 hex; release versions are the
 *   formats fwupd prints (triplet, quad, pair, plain, hex `0x…`, BCD).
 */

/** Every manager a package ref may name. */
export const PACKAGE_MANAGERS = [
  'apt',
  'dnf',
  'yum',
  'zypper',
  'windows-update',
  'winget',
  'softwareupdate',
  'brew',
  'fwupd',
  'file',
] as const;
export type PackageManagerName = (typeof PACKAGE_MANAGERS)[number];

export const MAX_PACKAGE_NAME_LENGTH = 255;
export const MAX_PACKAGE_VERSION_LENGTH = 128;

const within = (s: string, max: number) => s.length > 0 && s.length <= max;

/** True when the string holds a C0 control character or DEL (newlines, NUL, escape sequences …). */
export function hasControlCharacters(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

// ---------------------------------------------------------------- Debian / apt

const DEBIAN_ARCH = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** A Debian binary package name (Policy §5.6.1), optionally with apt's `:arch` qualifier. */
export function isDebianPackageName(s: string): boolean {
  if (!within(s, MAX_PACKAGE_NAME_LENGTH)) return false;
  const colon = s.indexOf(':');
  const name = colon < 0 ? s : s.slice(0, colon);
  if (colon >= 0 && !DEBIAN_ARCH.test(s.slice(colon + 1))) return false;
  return /^[a-z0-9][a-z0-9+.-]+$/.test(name);
}

/** A Debian version (Policy §5.6.12): `[epoch:]upstream_version[-debian_revision]`. */
export function isDebianVersion(s: string): boolean {
  if (!within(s, MAX_PACKAGE_VERSION_LENGTH)) return false;
  const m = /^(?:(\d{1,9}):)?([0-9][A-Za-z0-9.+~-]*)$/.exec(s);
  if (!m) return false;
  const rest = m[2]!;
  const dash = rest.lastIndexOf('-');
  // With a hyphen, the part after the last one is the revision: alphanumerics and + . ~, not empty.
  return dash < 0 || /^[A-Za-z0-9.+~]+$/.test(rest.slice(dash + 1));
}

// ---------------------------------------------------------------- RPM (dnf, yum, zypper packages)

/** An RPM package name: alphanumerics and `. _ + -`, not starting with `-` or `.`. */
export function isRpmName(s: string): boolean {
  return within(s, MAX_PACKAGE_NAME_LENGTH) && /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/.test(s);
}

const RPM_PART = '[A-Za-z0-9][A-Za-z0-9._+~^]*';
const RPM_EVR = new RegExp(`^(?:\\d{1,10}:)?${RPM_PART}(?:-${RPM_PART})?$`);

/** An RPM EVR, `[epoch:]version[-release]` (rpm-version(7)). */
export function isRpmEvr(s: string): boolean {
  return within(s, MAX_PACKAGE_VERSION_LENGTH) && RPM_EVR.test(s);
}

/** A zypper patch id as `zypper list-patches` prints it. */
export function isZypperPatchId(s: string): boolean {
  return within(s, MAX_PACKAGE_NAME_LENGTH) && /^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(s);
}

// ---------------------------------------------------------------- Windows

/** A Microsoft Knowledge Base article number: `KB` and digits (KB890830, KB5034441). */
export function isWindowsKb(s: string): boolean {
  return /^KB\d{4,8}$/.test(s);
}

const GUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;

/** What the Windows Update backend installs by: a KB number, or `WU-<UpdateID>` for an update without one. */
export function isWindowsUpdateId(s: string): boolean {
  return isWindowsKb(s) || (s.startsWith('WU-') && GUID.test(s.slice(3)));
}

// The winget schema's character class (control characters are checked apart), without whitespace; no part may
// start with '-'.
const WINGET_PART = /^[^.\s\\/:*?"<>|-][^.\s\\/:*?"<>|]{0,31}$/;

/** A winget PackageIdentifier: 2-8 dot-separated parts (Publisher.Package[.More]). */
export function isWingetId(s: string): boolean {
  if (!within(s, 128) || hasControlCharacters(s)) return false;
  const parts = s.split('.');
  return parts.length >= 2 && parts.length <= 8 && parts.every((p) => WINGET_PART.test(p));
}

/** A winget PackageVersion, starting with an alphanumeric, no whitespace. */
export function isWingetVersion(s: string): boolean {
  return within(s, 128) && !hasControlCharacters(s) && /^[A-Za-z0-9][^\s\\/:*?"<>|]*$/.test(s);
}

// ---------------------------------------------------------------- macOS

const BREW_TAP = '(?:[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/)?';
const BREW_FORMULA = new RegExp(`^${BREW_TAP}[a-z0-9][a-z0-9@+._-]*$`);
const BREW_CASK = new RegExp(`^${BREW_TAP}[a-z0-9][a-z0-9@+._-]*$`);

/** A Homebrew formula (`openssl@3`, `user/tap/formula`). */
export function isBrewFormula(s: string): boolean {
  return within(s, MAX_PACKAGE_NAME_LENGTH) && BREW_FORMULA.test(s);
}

/** A Homebrew cask token as our package refs carry it: `cask:<token>` (`cask:visual-studio-code`). */
export function isBrewCask(s: string): boolean {
  return s.startsWith('cask:') && within(s, MAX_PACKAGE_NAME_LENGTH) && BREW_CASK.test(s.slice(5));
}

/** A Homebrew version (`3.2.0_1`, cask versions such as `120.0.6099.129,abc` or `latest`). */
export function isBrewVersion(s: string): boolean {
  return within(s, MAX_PACKAGE_VERSION_LENGTH) && /^[A-Za-z0-9][A-Za-z0-9._+,~-]*$/.test(s);
}

/** A `softwareupdate --list` label: words of alphanumerics and `. _ ( ) + , -` separated by single spaces. */
export function isSoftwareUpdateLabel(s: string): boolean {
  return (
    within(s, MAX_PACKAGE_NAME_LENGTH) &&
    /^[A-Za-z0-9][A-Za-z0-9._()+,-]*(?: [A-Za-z0-9(][A-Za-z0-9._()+,-]*)*$/.test(s)
  );
}

/** A simple dotted version (softwareupdate, fwupd releases): alphanumerics and `. _ + -`, starting alphanumeric. */
export function isPlainVersion(s: string): boolean {
  return within(s, 64) && /^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(s);
}

// ---------------------------------------------------------------- fwupd

/** An fwupd device id: the 40 hex digits of a SHA-1. */
export function isFwupdDeviceId(s: string): boolean {
  return /^[0-9a-f]{40}$/.test(s);
}

/** A firmware GUID (8-4-4-4-12 hex). */
export function isFwupdGuid(s: string): boolean {
  return GUID.test(s);
}

/** An fwupd release version as fwupdmgr prints it (1.2.3, 1.2.3.4, 0x0000000a, 184.33.0). */
export function isFwupdVersion(s: string): boolean {
  return /^0x[0-9A-Fa-f]{1,16}$/.test(s) || isPlainVersion(s);
}

// ---------------------------------------------------------------- verified files

/** A file of the signed repository: a plain file name, no directory parts, no leading '-' or '.'. */
export function isRepositoryFileName(s: string): boolean {
  return (
    within(s, MAX_PACKAGE_NAME_LENGTH) &&
    !hasControlCharacters(s) &&
    /^[A-Za-z0-9_][^/\\]*$/.test(s) &&
    !/\s$/.test(s) &&
    !s.includes('..')
  );
}

// ---------------------------------------------------------------- per manager

interface Grammar {
  name: (s: string) => boolean;
  nameIs: string;
  version: (s: string) => boolean;
  versionIs: string;
}

const DEB: Grammar = {
  name: isDebianPackageName,
  nameIs: 'a Debian package name (Policy §5.6.1: a-z 0-9 + . -, starting alphanumeric; optional :arch)',
  version: isDebianVersion,
  versionIs: 'a Debian version (Policy §5.6.12: [epoch:]upstream[-revision])',
};
const RPM: Grammar = {
  name: isRpmName,
  nameIs: 'an RPM package name (alphanumerics and . _ + -, not starting with - or .)',
  version: isRpmEvr,
  versionIs: 'an RPM [epoch:]version[-release]',
};

const GRAMMARS: Record<PackageManagerName, Grammar> = {
  apt: DEB,
  dnf: RPM,
  yum: RPM,
  zypper: {
    name: isZypperPatchId,
    nameIs: 'a zypper patch id (alphanumerics and . _ + -, starting alphanumeric)',
    version: isRpmEvr,
    versionIs: 'an RPM [epoch:]version[-release]',
  },
  'windows-update': {
    name: isWindowsUpdateId,
    nameIs: 'a KB number (KB5034441) or WU-<UpdateID GUID>',
    version: isPlainVersion,
    versionIs: 'a plain version',
  },
  winget: {
    name: isWingetId,
    nameIs: 'a winget package identifier (Publisher.Package)',
    version: isWingetVersion,
    versionIs: 'a winget package version',
  },
  softwareupdate: {
    name: isSoftwareUpdateLabel,
    nameIs: 'a softwareupdate label',
    version: isPlainVersion,
    versionIs: 'a plain version',
  },
  brew: {
    name: (s) => isBrewFormula(s) || isBrewCask(s),
    nameIs: 'a Homebrew formula or cask:<token>',
    version: isBrewVersion,
    versionIs: 'a Homebrew version',
  },
  fwupd: {
    name: (s) => isFwupdDeviceId(s) || isFwupdGuid(s),
    nameIs: 'an fwupd device id (40 hex digits) or GUID',
    version: isFwupdVersion,
    versionIs: 'an fwupd release version',
  },
  file: {
    name: isRepositoryFileName,
    nameIs: 'a plain file name',
    version: isPlainVersion,
    versionIs: 'a plain version',
  },
};

export function isPackageManager(s: string): s is PackageManagerName {
  return (PACKAGE_MANAGERS as readonly string[]).includes(s);
}

/** A string safe to put in an error message: JSON-quoted (control characters escaped), cut at 80 characters. */
export function quoted(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

/** Why this is not a package name of `manager`, or null when it is one. */
export function packageNameProblem(manager: string, name: string): string | null {
  if (!isPackageManager(manager))
    return `unknown package manager ${quoted(manager)} (known: ${PACKAGE_MANAGERS.join(', ')})`;
  const g = GRAMMARS[manager];
  return g.name(name) ? null : `${manager} package name ${quoted(name)} is not ${g.nameIs}`;
}

/** Why this is not a package version of `manager`, or null when it is one. */
export function packageVersionProblem(manager: string, version: string, name?: string): string | null {
  if (!isPackageManager(manager))
    return `unknown package manager ${quoted(manager)} (known: ${PACKAGE_MANAGERS.join(', ')})`;
  const g = GRAMMARS[manager];
  return g.version(version)
    ? null
    : `${manager} version ${quoted(version)}${name === undefined ? '' : ` of ${quoted(name)}`} is not ${g.versionIs}`;
}

/** Why this package ref may not be handed to its backend, or null when it may. */
export function packageRefProblem(ref: {
  manager: string;
  name: string;
  version?: string;
  sha256?: string;
}): string | null {
  const name = packageNameProblem(ref.manager, ref.name);
  if (name) return name;
  if (ref.version !== undefined) {
    const version = packageVersionProblem(ref.manager, ref.version, ref.name);
    if (version) return version;
  }
  if (ref.manager === 'file' && (!ref.sha256 || !/^[0-9a-f]{64}$/.test(ref.sha256)))
    return `file ${quoted(ref.name)} carries no sha256: it cannot be verified against the signed manifest`;
  return null;
}

/**
 * Every problem with the packages of an install / verify / rollback payload, including the package names and
 * versions of `previousVersions` (they go to the same backends as `name=version` arguments). Empty when all is well.
 */
export function patchPayloadProblems(
  patches: ReadonlyArray<{
    patchId: string;
    packages: ReadonlyArray<{ manager: string; name: string; version?: string; sha256?: string }>;
    previousVersions?: Record<string, string>;
  }>,
): string[] {
  const out: string[] = [];
  for (const p of patches) {
    for (const ref of p.packages) {
      const why = packageRefProblem(ref);
      if (why) out.push(`${p.patchId}: ${why}`);
    }
    const managers = [...new Set(p.packages.map((r) => r.manager).filter((m) => m !== 'file'))];
    for (const [name, version] of Object.entries(p.previousVersions ?? {})) {
      for (const m of managers) {
        // zypper rolls back packages (rpm names), not patches.
        const why =
          m === 'zypper'
            ? isRpmName(name)
              ? null
              : `zypper package name ${quoted(name)} is not ${RPM.nameIs}`
            : packageNameProblem(m, name);
        const whyVersion = packageVersionProblem(m, version, name);
        if (why) out.push(`${p.patchId}: previousVersions: ${why}`);
        else if (whyVersion) out.push(`${p.patchId}: previousVersions: ${whyVersion}`);
      }
    }
  }
  return out;
}
