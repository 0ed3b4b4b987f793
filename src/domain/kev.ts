/**
 * CISA Known Exploited Vulnerabilities catalog, indexed by CVE id. Built from the catalog's JSON
 * (bundled under assets/kev/, loaded by integrations/kev.ts). Pure.
 */
import { z } from 'zod';
import { CodedError, ErrorCode } from './errors';
import { type PatchFacts } from './risk';

export interface KevEntry {
  cveID: string;
  vendorProject: string;
  product: string;
  vulnerabilityName: string;
  dateAdded: string;
  dueDate: string;
  /** "Known" or "Unknown" in the catalog. */
  knownRansomwareCampaignUse: string;
}

const entrySchema = z.object({
  cveID: z.string().regex(/^CVE-\d{4}-\d{4,}$/i),
  vendorProject: z.string().default(''),
  product: z.string().default(''),
  vulnerabilityName: z.string().default(''),
  dateAdded: z.string().default(''),
  dueDate: z.string().default(''),
  knownRansomwareCampaignUse: z.string().default('Unknown'),
});

const catalogSchema = z.object({
  catalogVersion: z.string().default('unknown'),
  dateReleased: z.string().optional(),
  vulnerabilities: z.array(z.unknown()),
});

/** CVE ids are compared upper-case and trimmed. */
export function normalizeCve(cve: string): string {
  return cve.trim().toUpperCase();
}

export class KevIndex {
  private constructor(
    private readonly entries: ReadonlyMap<string, KevEntry>,
    readonly catalogVersion: string,
    readonly dateReleased: string | undefined,
    /** Entries in the file that were not usable (no CVE id), skipped. */
    readonly skipped: number,
  ) {}

  /**
   * Index a catalog document (the JSON CISA publishes). Throws CodedError(INVALID_INPUT) when it is not
   * a catalog at all; single malformed entries are skipped and counted.
   */
  static fromCatalog(json: unknown): KevIndex {
    const parsed = catalogSchema.safeParse(json);
    if (!parsed.success) {
      throw new CodedError(
        ErrorCode.InvalidInput,
        'This is not a CISA KEV catalog: expected an object with "catalogVersion" and a "vulnerabilities" list. Download known_exploited_vulnerabilities.json from cisa.gov.',
      );
    }
    const map = new Map<string, KevEntry>();
    let skipped = 0;
    for (const raw of parsed.data.vulnerabilities) {
      const e = entrySchema.safeParse(raw);
      if (!e.success) {
        skipped++;
        continue;
      }
      const id = normalizeCve(e.data.cveID);
      map.set(id, { ...e.data, cveID: id });
    }
    return new KevIndex(map, parsed.data.catalogVersion, parsed.data.dateReleased, skipped);
  }

  /** An empty index (no catalog available). */
  static empty(): KevIndex {
    return new KevIndex(new Map(), 'none', undefined, 0);
  }

  has(cve: string): boolean {
    return this.entries.has(normalizeCve(cve));
  }

  entry(cve: string): KevEntry | undefined {
    return this.entries.get(normalizeCve(cve));
  }

  get size(): number {
    return this.entries.size;
  }

  /** The CVEs of `cves` that are in the catalog, in input order, upper-case, without duplicates. */
  knownExploited(cves: readonly string[]): string[] {
    const out: string[] = [];
    for (const c of cves) {
      const id = normalizeCve(c);
      if (this.entries.has(id) && !out.includes(id)) out.push(id);
    }
    return out;
  }
}

/**
 * Patches with the known-exploited flag set from the catalog: a patch is known exploited when the vendor
 * says so or any of its CVEs is in KEV; `knownExploitedCves` lists the catalog's hits (so the reason names
 * the exploited CVE, not just the first one). Returns new objects; the input is not changed.
 */
export function markKnownExploited<T extends Pick<PatchFacts, 'cves' | 'knownExploited'>>(
  patches: readonly T[],
  kev: KevIndex,
): Array<T & { knownExploitedCves: string[] }> {
  return patches.map((p) => {
    const hits = kev.knownExploited(p.cves);
    return { ...p, knownExploited: p.knownExploited || hits.length > 0, knownExploitedCves: hits };
  });
}
