/**
 * Encryption at rest for secrets the server must be able to read back (the manifest-signing private key):
 * AES-256-GCM with a key kept outside the database, so a database dump or backup alone does not let anyone
 * sign manifests that every agent would trust.
 *
 * The key comes from SECRETS_KEY (32 bytes, base64 or hex) or, when that is unset, from `<data dir>/secrets.key`,
 * created on first use with 32 random bytes and mode 0600. Sealed values read `enc:v1:<key id>:<iv>:<tag>:<ciphertext>`
 * (base64url parts); the key id (first 8 hex of the key's sha256) makes a wrong key an explicit error instead
 * of a failed tag check.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

const PREFIX = 'enc:v1:';

export class SecretBoxError extends Error {
  override name = 'SecretBoxError';
}

export class SecretBox {
  readonly keyId: string;
  private constructor(
    private readonly key: Buffer,
    /** Where the key came from, for error messages. */
    readonly source: string,
  ) {
    this.keyId = createHash('sha256').update(key).digest('hex').slice(0, 8);
  }

  /** SECRETS_KEY's value: 32 bytes as base64 (44 characters) or hex (64 characters). */
  static fromString(value: string, source = 'SECRETS_KEY'): SecretBox {
    const v = value.trim();
    const key = /^[0-9a-fA-F]{64}$/.test(v) ? Buffer.from(v, 'hex') : Buffer.from(v, 'base64');
    if (key.length !== 32)
      throw new SecretBoxError(
        `${source} must be 32 bytes as base64 or hex (generate one with: openssl rand -base64 32); it decodes to ${key.length} bytes`,
      );
    return new SecretBox(key, source);
  }

  /** The key file in the data folder, created (mode 0600) when missing. */
  static async fromFile(file: string): Promise<SecretBox> {
    try {
      return SecretBox.fromString(await fs.readFile(file, 'utf8'), file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    await fs.mkdir(path.dirname(file), { recursive: true });
    try {
      await fs.writeFile(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // another process created it first: use theirs
    }
    return SecretBox.fromString(await fs.readFile(file, 'utf8'), file);
  }

  /** A key that lives only in this process (tests). */
  static ephemeral(): SecretBox {
    return new SecretBox(randomBytes(32), 'an ephemeral test key');
  }

  /**
   * A 32-byte key for one purpose (HKDF-SHA256 over this key, `purpose` as the info): the audit chain and its
   * checkpoints are keyed by the same secret as the sealed values without any of them being usable as another.
   */
  deriveKey(purpose: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.key, Buffer.alloc(0), `patchops:${purpose}`, 32));
  }

  static isSealed(value: string): boolean {
    return value.startsWith(PREFIX);
  }

  seal(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${PREFIX}${this.keyId}:${[iv, cipher.getAuthTag(), ct].map((b) => b.toString('base64url')).join(':')}`;
  }

  open(sealed: string): string {
    if (!SecretBox.isSealed(sealed)) throw new SecretBoxError('the value is not sealed (no enc:v1: prefix)');
    const [keyId, iv, tag, ct] = sealed.slice(PREFIX.length).split(':');
    if (!keyId || !iv || !tag || ct === undefined) throw new SecretBoxError('the sealed value is malformed');
    if (keyId !== this.keyId) {
      throw new SecretBoxError(
        `the value was sealed with key ${keyId}, but the key from ${this.source} is ${this.keyId}: use the SECRETS_KEY (or secrets.key file) this database was set up with`,
      );
    }
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
      d.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
    } catch {
      throw new SecretBoxError('the sealed value fails its integrity check: it was altered');
    }
  }
}

/** The server's secret box: SECRETS_KEY when set, else `<dataDir>/secrets.key`. */
export function secretBoxFor(config: { dataDir: string; secretsKey?: string }): Promise<SecretBox> {
  return config.secretsKey
    ? Promise.resolve(SecretBox.fromString(config.secretsKey))
    : SecretBox.fromFile(path.join(config.dataDir, 'secrets.key'));
}
