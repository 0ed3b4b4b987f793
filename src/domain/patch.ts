/**
 * Patch classification: the eleven patch types (the ten Windows-style classes plus firmware), the one severity scale, vendors' own words mapped onto
 * them, and supersedence. Pure; safe in workflow code.
 */

export const PatchType = {
  SECURITY: 'security',
  CRITICAL: 'critical',
  DEFINITION: 'definition',
  BUG_FIX: 'bug_fix',
  FEATURE: 'feature',
  UPDATE_ROLLUP: 'update_rollup',
  SERVICE_PACK: 'service_pack',
  HOTFIX: 'hotfix',
  TOOL: 'tool',
  UPDATE: 'update',
  /** Device firmware (fwupd / LVFS): flashed to hardware, most need a reboot; deployed only where a policy opts in. */
  FIRMWARE: 'firmware',
} as const;
export type PatchType = (typeof PatchType)[keyof typeof PatchType];
export const PATCH_TYPES: readonly PatchType[] = Object.values(PatchType);

export const Severity = {
  CRITICAL: 'critical',
  IMPORTANT: 'important',
  MODERATE: 'moderate',
  LOW: 'low',
  UNSPECIFIED: 'unspecified',
} as const;
export type Severity = (typeof Severity)[keyof typeof Severity];
export const SEVERITIES: readonly Severity[] = Object.values(Severity);

/** Higher is more severe. */
export const SEVERITY_RANK: Readonly<Record<Severity, number>> = {
  critical: 4,
  important: 3,
  moderate: 2,
  low: 1,
  unspecified: 0,
};

/**
 * How much care a type asks for before it may be deployed without a person (auto-approval names low-care types such
 * as definitions): higher asks more. When agents disagree about a patch's type, the shared catalog keeps the type
 * that asks more, so one agent labelling a security update `definition` cannot carry it past approval for the
 * fleet. Firmware is its own category (deployed only where a policy opts in) and is never reached or left this way.
 */
export const TYPE_CAUTION: Readonly<Record<Exclude<PatchType, 'firmware'>, number>> = {
  definition: 0,
  tool: 1,
  update: 2,
  feature: 3,
  bug_fix: 4,
  hotfix: 5,
  service_pack: 6,
  update_rollup: 7,
  critical: 8,
  security: 9,
};

/** The catalog's type after another report of the same patch: the one asking more care (TYPE_CAUTION). */
export function moreCautiousType(current: string, reported: string): string {
  if (current === reported || current === PatchType.FIRMWARE || reported === PatchType.FIRMWARE) return current;
  const rank = (t: string) => (t in TYPE_CAUTION ? TYPE_CAUTION[t as keyof typeof TYPE_CAUTION] : -1);
  return rank(reported) > rank(current) ? reported : current;
}

export function isPatchType(word: string): word is PatchType {
  return (PATCH_TYPES as readonly string[]).includes(word);
}

export function isSeverity(word: string): word is Severity {
  return (SEVERITIES as readonly string[]).includes(word);
}

/** The most severe of a list (unspecified for an empty list). */
export function maxSeverity(list: Iterable<Severity>): Severity {
  let best: Severity = 'unspecified';
  for (const s of list) if (SEVERITY_RANK[s] > SEVERITY_RANK[best]) best = s;
  return best;
}

export type SeveritySource = 'msrc' | 'debian' | 'ubuntu' | 'redhat' | 'suse' | 'apple' | 'cvss' | 'vendor';

/** CVSS v3/v4 qualitative bands: 9.0+ critical, 7.0+ high, 4.0+ medium, above 0 low. */
export function severityFromCvss(score: number | null | undefined): Severity {
  if (score === null || score === undefined || !Number.isFinite(score) || score <= 0) return 'unspecified';
  if (score >= 9) return 'critical';
  if (score >= 7) return 'important';
  if (score >= 4) return 'moderate';
  return 'low';
}

const norm = (w: string): string => w.trim().toLowerCase().replace(/[_-]+/g, ' ').replace(/\s+/g, ' ');

/** Words vendors use, per source. Unknown words fall back to the generic table, then unspecified. */
const SOURCE_WORDS: Record<Exclude<SeveritySource, 'cvss' | 'apple'>, Record<string, Severity>> = {
  // Microsoft Security Response Center severity ratings.
  msrc: { critical: 'critical', important: 'important', moderate: 'moderate', low: 'low' },
  // Debian: package urgency (emergency/critical/high/medium/low) and security-tracker urgency
  // (high/medium/low/unimportant/"not yet assigned"/end-of-life).
  debian: {
    emergency: 'critical',
    critical: 'critical',
    high: 'important',
    medium: 'moderate',
    low: 'low',
    unimportant: 'low',
    'not yet assigned': 'unspecified',
    'end of life': 'unspecified',
  },
  // Ubuntu CVE tracker priorities.
  ubuntu: {
    critical: 'critical',
    high: 'important',
    medium: 'moderate',
    low: 'low',
    negligible: 'low',
    untriaged: 'unspecified',
  },
  // Red Hat errata / product security impact.
  redhat: { critical: 'critical', important: 'important', moderate: 'moderate', low: 'low' },
  // SUSE patch severities (zypper).
  suse: { critical: 'critical', important: 'important', moderate: 'moderate', low: 'low', unspecified: 'unspecified' },
  // Third-party vendors: the common words.
  vendor: {
    critical: 'critical',
    urgent: 'critical',
    emergency: 'critical',
    high: 'important',
    important: 'important',
    medium: 'moderate',
    moderate: 'moderate',
    low: 'low',
    minor: 'low',
    negligible: 'low',
    none: 'unspecified',
    unknown: 'unspecified',
  },
};

/**
 * One severity from a vendor's own word (or a CVSS score). Apple publishes no ratings: pass the CVSS
 * base score (number or numeric string) with source 'apple' or 'cvss'. Never throws.
 */
export function normalizeSeverity(source: SeveritySource, word: string | number | undefined): Severity {
  if (word === undefined || word === null) return 'unspecified';
  if (typeof word === 'number') return severityFromCvss(word);
  const w = norm(word);
  if (w === '') return 'unspecified';
  if (source === 'cvss' || source === 'apple') {
    const n = Number(w);
    if (w !== '' && Number.isFinite(n)) return severityFromCvss(n);
    return SOURCE_WORDS.vendor[w] ?? 'unspecified';
  }
  const direct = SOURCE_WORDS[source][w];
  if (direct) return direct;
  const numeric = Number(w);
  if (Number.isFinite(numeric)) return severityFromCvss(numeric);
  return SOURCE_WORDS.vendor[w] ?? 'unspecified';
}

const TYPE_WORDS: Record<string, PatchType> = {
  // Microsoft update classifications (WSUS / Windows Update), singular and plural.
  'security updates': 'security',
  'security update': 'security',
  'critical updates': 'critical',
  'critical update': 'critical',
  'definition updates': 'definition',
  'definition update': 'definition',
  'update rollups': 'update_rollup',
  'update rollup': 'update_rollup',
  'service packs': 'service_pack',
  'service pack': 'service_pack',
  'feature packs': 'feature',
  'feature pack': 'feature',
  upgrades: 'feature',
  upgrade: 'feature',
  tools: 'tool',
  tool: 'tool',
  updates: 'update',
  update: 'update',
  hotfix: 'hotfix',
  hotfixes: 'hotfix',
  drivers: 'update',
  driver: 'update',
  // Red Hat advisory kinds.
  rhsa: 'security',
  rhba: 'bug_fix',
  rhea: 'feature',
  // zypper / dnf categories.
  security: 'security',
  recommended: 'bug_fix',
  optional: 'feature',
  feature: 'feature',
  enhancement: 'feature',
  newpackage: 'feature',
  bugfix: 'bug_fix',
  'bug fix': 'bug_fix',
  'bug fixes': 'bug_fix',
  bug: 'bug_fix',
  // Our own words.
  critical: 'critical',
  definition: 'definition',
  definitions: 'definition',
  signatures: 'definition',
  update_rollup: 'update_rollup',
  rollup: 'update_rollup',
  service_pack: 'service_pack',
  // fwupd / LVFS and vendor catalogues.
  firmware: 'firmware',
  'firmware update': 'firmware',
  'firmware updates': 'firmware',
  bios: 'firmware',
};

/**
 * One patch type from a vendor's classification word. Red Hat advisory ids (RHSA-2024:1234) count by
 * their prefix. Unknown words are 'update'.
 */
export function normalizePatchType(word: string): PatchType {
  const raw = word.trim().toLowerCase();
  const advisory = /^(rhsa|rhba|rhea|alsa|alba|alea|elsa|elba|elea)[-:]/.exec(raw);
  if (advisory) {
    const kind = advisory[1]!.slice(2);
    return kind === 'sa' ? 'security' : kind === 'ba' ? 'bug_fix' : 'feature';
  }
  if (isPatchType(raw)) return raw;
  const w = norm(raw);
  return TYPE_WORDS[w] ?? TYPE_WORDS[w.replace(/ /g, '')] ?? 'update';
}

/**
 * Maps each superseded patch id to its final successor, following chains (A → B → C gives A → C and
 * B → C). Successors need not be in the list. Cycle-safe: a self-reference is ignored, and a patch whose
 * chain runs into a loop (A → B → A) gets no mapping at all, so nothing is dropped for a vendor's
 * inconsistent data.
 */
export function resolveSupersedence(patches: Array<{ id: string; supersededBy?: string | null }>): Map<string, string> {
  const next = new Map<string, string>();
  for (const p of patches) {
    if (p.supersededBy && p.supersededBy !== p.id) next.set(p.id, p.supersededBy);
  }
  const result = new Map<string, string>();
  const looping = new Set<string>();
  for (const start of next.keys()) {
    const seen = new Set<string>([start]);
    let cur = next.get(start)!;
    let loop = false;
    for (;;) {
      if (looping.has(cur)) {
        loop = true;
        break;
      }
      const known = result.get(cur);
      if (known !== undefined) {
        cur = known;
        break;
      }
      if (seen.has(cur)) {
        loop = true;
        break;
      }
      const n = next.get(cur);
      if (n === undefined) break;
      seen.add(cur);
      cur = n;
    }
    if (loop) looping.add(start);
    else result.set(start, cur);
  }
  return result;
}
