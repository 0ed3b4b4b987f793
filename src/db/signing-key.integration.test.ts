import { generateKeyPairSync, verify } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { activeSigningKey, latestManifest, publishManifest, refreshManifestIfDue } from './repository';
import { manifestSigningKeys, repositoryManifests } from './schema/index';
import { SecretBox } from './secret-box';

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase();
});
afterAll(async () => {
  await tdb?.close();
});

describe('the manifest-signing key at rest', () => {
  it('is stored sealed, signs manifests, and cannot be opened with another key', async () => {
    const box = SecretBox.ephemeral();
    const key = await activeSigningKey(tdb.db, box);
    expect(key.privateKey).toContain('BEGIN PRIVATE KEY');
    const [row] = await tdb.db.select().from(manifestSigningKeys).where(eq(manifestSigningKeys.id, key.id));
    expect(row!.privateKey).toMatch(/^enc:v1:/);
    expect(row!.privateKey).not.toContain('PRIVATE KEY');
    // The same key again (no second key is made).
    expect((await activeSigningKey(tdb.db, box)).id).toBe(key.id);

    const m = await publishManifest(tdb.db, box, [{ name: 'firefox-141.0.msi', sha256: 'a'.repeat(64), size: 1 }]);
    expect(verify(null, Buffer.from(m.body), key.publicKey, Buffer.from(m.signature, 'base64'))).toBe(true);

    await expect(activeSigningKey(tdb.db, SecretBox.ephemeral())).rejects.toThrow(
      /sealed with key .* use the SECRETS_KEY \(or secrets.key file\) this database was set up with/,
    );
    await tdb.db.update(manifestSigningKeys).set({ active: false }).where(eq(manifestSigningKeys.id, key.id));
  });

  it('seals a key stored in the clear by an earlier version the first time it is read', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519', {
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const [legacy] = await tdb.db.insert(manifestSigningKeys).values({ publicKey, privateKey }).returning();
    const box = SecretBox.ephemeral();
    const key = await activeSigningKey(tdb.db, box);
    expect(key).toEqual({ id: legacy!.id, publicKey, privateKey });
    const [row] = await tdb.db.select().from(manifestSigningKeys).where(eq(manifestSigningKeys.id, legacy!.id));
    expect(row!.privateKey).toMatch(/^enc:v1:/);
    expect(box.open(row!.privateKey)).toBe(privateKey);
  });

  it('the manifest is re-signed with the same files once half its lifetime is gone, once across concurrent servers', async () => {
    const box = SecretBox.ephemeral();
    await tdb.db.delete(repositoryManifests);
    await tdb.db.update(manifestSigningKeys).set({ active: false });
    const key = await activeSigningKey(tdb.db, box);
    const files = [{ name: 'Firefox Setup 141.0.msi', sha256: 'b'.repeat(64), size: 73_400_320 }];
    const t0 = new Date();
    const first = await publishManifest(tdb.db, box, files, { ttlHours: 2, now: t0 });
    const at = (min: number) => new Date(t0.getTime() + min * 60_000);
    expect(await refreshManifestIfDue(tdb.db, box, at(59))).toBeNull();
    const [a, b] = await Promise.all([
      refreshManifestIfDue(tdb.db, box, at(61)),
      refreshManifestIfDue(tdb.db, box, at(61)),
    ]);
    const made = [a, b].filter((x) => x !== null);
    expect(made).toHaveLength(1);
    expect(made[0]).toEqual({ version: first.version + 1, expiresAt: at(61 + 120).toISOString() });
    const latest = (await latestManifest(tdb.db))!;
    expect(JSON.parse(latest.body)).toEqual({ version: first.version + 1, expiresAt: at(181).toISOString(), files });
    expect(verify(null, Buffer.from(latest.body), key.publicKey, Buffer.from(latest.signature, 'base64'))).toBe(true);
    // Fresh again: nothing due until half of the new lifetime is gone.
    expect(await refreshManifestIfDue(tdb.db, box, at(62))).toBeNull();
  });
});
