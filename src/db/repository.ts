/**
 * The central repository: the signed manifests of its files (repository_manifests) and the key that signs them
 * (manifest_signing_keys, also the key of the download tokens).
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { and, desc, eq, sql } from 'drizzle-orm';
import { CodedError, ErrorCode } from '../domain/errors';
import type { ManifestBody, SignedManifest } from '../shared/agent-protocol';
import { appendAudit } from './audit';
import type { Db } from './client';
import { manifestSigningKeys, repositoryManifests } from './schema/index';
import { SecretBox } from './secret-box';

/**
 * The active manifest-signing key, created on first use. The private key is stored sealed by `box` (a key kept
 * outside the database, see secret-box.ts); a row from before sealing is sealed in place the first time it is read.
 */
export async function activeSigningKey(
  db: Db,
  box: SecretBox,
): Promise<{ id: number; publicKey: string; privateKey: string }> {
  const open = async (row: typeof manifestSigningKeys.$inferSelect) => {
    if (SecretBox.isSealed(row.privateKey))
      return { id: row.id, publicKey: row.publicKey, privateKey: box.open(row.privateKey) };
    await db
      .update(manifestSigningKeys)
      .set({ privateKey: box.seal(row.privateKey) })
      .where(and(eq(manifestSigningKeys.id, row.id), eq(manifestSigningKeys.privateKey, row.privateKey)));
    return { id: row.id, publicKey: row.publicKey, privateKey: row.privateKey };
  };
  const [row] = await db
    .select()
    .from(manifestSigningKeys)
    .where(eq(manifestSigningKeys.active, true))
    .orderBy(desc(manifestSigningKeys.id))
    .limit(1);
  if (row) return open(row);
  const created = await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(74201)`);
    const [again] = await tx
      .select()
      .from(manifestSigningKeys)
      .where(eq(manifestSigningKeys.active, true))
      .orderBy(desc(manifestSigningKeys.id))
      .limit(1);
    if (again) return again;
    const { publicKey, privateKey } = generateKeyPairSync('ed25519', {
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const [inserted] = await tx
      .insert(manifestSigningKeys)
      .values({ publicKey, privateKey: box.seal(privateKey) })
      .returning();
    return inserted!;
  });
  return open(created);
}

export async function publishManifest(
  db: Db,
  box: SecretBox,
  files: ManifestBody['files'],
  opts: { ttlHours?: number; now?: Date } = {},
): Promise<SignedManifest & { version: number }> {
  const m = await updateManifest(db, box, () => files, opts);
  return m!;
}

type ManifestRow = typeof repositoryManifests.$inferSelect;

/**
 * Every change of the repository's file list goes through here: under one lock it reads the latest manifest,
 * asks `change` for the new list (null: nothing to publish; a thrown error publishes nothing) and signs it as the
 * next version. So concurrent publishers (two `repo add`s, a `repo remove`, the server re-signing) never build on
 * a stale list. `ttlHours` may depend on the latest row, hence a function is accepted.
 */
export async function updateManifest(
  db: Db,
  box: SecretBox,
  change: (latest: ManifestRow | null) => ManifestBody['files'] | null,
  opts: { ttlHours?: number | ((latest: ManifestRow | null) => number); now?: Date } = {},
): Promise<
  | (SignedManifest & {
      version: number;
      previous: ManifestRow | null;
      files: ManifestBody['files'];
      expiresAt: string;
    })
  | null
> {
  const key = await activeSigningKey(db, box);
  const now = opts.now ?? new Date();
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(74202)`);
    const [last] = await tx.select().from(repositoryManifests).orderBy(desc(repositoryManifests.version)).limit(1);
    const latest = last ?? null;
    const files = change(latest);
    if (!files) return null;
    const version = (latest?.version ?? 0) + 1;
    const ttlHours = typeof opts.ttlHours === 'function' ? opts.ttlHours(latest) : (opts.ttlHours ?? 24 * 7);
    const expiresAt = new Date(now.getTime() + ttlHours * 3600_000);
    const body = JSON.stringify({ version, expiresAt: expiresAt.toISOString(), files } satisfies ManifestBody);
    const signature = sign(null, Buffer.from(body, 'utf8'), key.privateKey).toString('base64');
    await tx
      .insert(repositoryManifests)
      .values({ version, body, signature, keyId: key.id, files, expiresAt, createdAt: now });
    return { version, body, signature, keyId: key.id, previous: latest, files, expiresAt: expiresAt.toISOString() };
  });
}

const lifetimeMs = (row: ManifestRow) => row.expiresAt.getTime() - row.createdAt.getTime();

/**
 * Keeps the repository's manifest from expiring: when the latest one has used half its lifetime, the same files
 * are published again under a new version with the same lifetime (agents refuse expired manifests, and nobody
 * should have to run `repo add` weekly just to keep third-party installs working). Several server processes may
 * call this: the check is made under the publish lock, so only one re-signs. Returns the new version, or null
 * when nothing was due.
 */
export async function refreshManifestIfDue(
  db: Db,
  box: SecretBox,
  now: Date,
): Promise<{ version: number; expiresAt: string } | null> {
  const due = (row: ManifestRow | null): row is ManifestRow =>
    row !== null && lifetimeMs(row) > 0 && row.expiresAt.getTime() - now.getTime() <= lifetimeMs(row) / 2;
  // Cheap check first (every server does it every few minutes); the real one is under the lock.
  const [row] = await db.select().from(repositoryManifests).orderBy(desc(repositoryManifests.version)).limit(1);
  if (!due(row ?? null)) return null;
  const m = await updateManifest(db, box, (latest) => (due(latest) ? latest.files : null), {
    ttlHours: (latest) => lifetimeMs(latest!) / 3600_000,
    now,
  });
  if (!m) return null;
  await appendAudit(db, {
    actor: 'system:server',
    action: 'repository.manifest.refreshed',
    subjectType: 'manifest',
    subjectId: String(m.version),
    details: { previous: m.previous!.version, expiresAt: m.expiresAt, files: m.files.length },
  });
  return { version: m.version, expiresAt: m.expiresAt };
}

export async function latestManifest(db: Db): Promise<SignedManifest | null> {
  const [row] = await db.select().from(repositoryManifests).orderBy(desc(repositoryManifests.version)).limit(1);
  return row ? { body: row.body, signature: row.signature, keyId: row.keyId } : null;
}

/**
 * Publishes a new signed manifest that lists `files` besides the latest one's and returns it. An entry with the
 * sha256 of a listed file replaces that entry (a file renamed or added again); the others are appended. Merged under
 * the publishing lock, so a concurrent add, remove or re-signing is never lost. Audited as `repository.files_added`
 * by `by`. The bytes must already be in the repository folder: this publishes the list only.
 */
export async function addManifestFiles(
  db: Db,
  box: SecretBox,
  files: ManifestBody['files'],
  opts: { ttlHours?: number; now?: Date; by?: string } = {},
): Promise<{ version: number; previousVersion: number | null; files: ManifestBody['files'] }> {
  const m = await updateManifest(
    db,
    box,
    (latest) => {
      const list = [...(latest?.files ?? [])];
      for (const f of files) {
        const i = list.findIndex((x) => x.sha256 === f.sha256);
        if (i >= 0) list[i] = f;
        else list.push(f);
      }
      return list;
    },
    { ttlHours: opts.ttlHours, now: opts.now },
  );
  const previousVersion = m!.previous?.version ?? null;
  await appendAudit(db, {
    actor: opts.by ?? 'system',
    action: 'repository.files_added',
    subjectType: 'manifest',
    subjectId: String(m!.version),
    details: { previous: previousVersion, added: files.map((f) => ({ name: f.name, sha256: f.sha256, size: f.size })) },
  });
  return { version: m!.version, previousVersion, files: m!.files };
}

/**
 * Publishes a new signed manifest without the files named by `refs` (a file name, or a full sha256) and returns it
 * with the removed entries and the remaining ones. All or nothing: NotFound when a ref is not in the latest manifest
 * (or none was published), Conflict when a name stands for several files (give the sha256); then nothing is published.
 * Holds the manifest publishing lock from reading the latest manifest to publishing, so no concurrent publish is lost.
 */
export async function removeManifestFiles(
  db: Db,
  box: SecretBox,
  refs: string[],
  opts: { ttlHours?: number; now?: Date; by?: string } = {},
): Promise<{ version: number; previousVersion: number; removed: ManifestBody['files']; files: ManifestBody['files'] }> {
  let removed: ManifestBody['files'] = [];
  const m = await updateManifest(
    db,
    box,
    (latest) => {
      if (!latest)
        throw new CodedError(
          ErrorCode.NotFound,
          'no repository manifest has been published yet: there are no files to remove',
        );
      const drop = new Set<string>();
      const unknown: string[] = [];
      for (const ref of refs) {
        const bySha = /^[0-9a-f]{64}$/i.test(ref) ? latest.files.filter((f) => f.sha256 === ref.toLowerCase()) : [];
        const matches = bySha.length > 0 ? bySha : latest.files.filter((f) => f.name === ref);
        if (matches.length === 0) unknown.push(ref);
        else if (matches.length > 1) {
          throw new CodedError(
            ErrorCode.Conflict,
            `${matches.length} files are named "${ref}" (${matches.map((f) => f.sha256).join(', ')}): give the sha256 of the one to remove. Nothing was removed.`,
          );
        } else drop.add(matches[0]!.sha256);
      }
      if (unknown.length > 0) {
        throw new CodedError(
          ErrorCode.NotFound,
          `not in manifest version ${latest.version}: ${unknown.map((r) => `"${r}"`).join(', ')}; see \`patchops repo list\`. Nothing was removed and no manifest published.`,
        );
      }
      removed = latest.files.filter((f) => drop.has(f.sha256));
      return latest.files.filter((f) => !drop.has(f.sha256));
    },
    { ttlHours: opts.ttlHours, now: opts.now },
  );
  const previousVersion = m!.previous!.version;
  await appendAudit(db, {
    actor: opts.by ?? 'system',
    action: 'repository.files_removed',
    subjectType: 'manifest',
    subjectId: String(m!.version),
    details: { previous: previousVersion, removed: removed.map((f) => ({ name: f.name, sha256: f.sha256 })) },
  });
  return { version: m!.version, previousVersion, removed, files: m!.files };
}
