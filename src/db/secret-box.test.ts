import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SecretBox, secretBoxFor } from './secret-box';

describe('SecretBox', () => {
  it('seals and opens; the sealed text hides the plaintext and differs every time', () => {
    const box = SecretBox.ephemeral();
    const pem = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIK\n-----END PRIVATE KEY-----\n';
    const a = box.seal(pem);
    const b = box.seal(pem);
    expect(a).toMatch(/^enc:v1:[0-9a-f]{8}:/);
    expect(a).not.toContain('PRIVATE KEY');
    expect(a).not.toBe(b);
    expect(box.open(a)).toBe(pem);
    expect(SecretBox.isSealed(a)).toBe(true);
    expect(SecretBox.isSealed(pem)).toBe(false);
  });

  it('names a wrong key instead of failing obscurely, and detects tampering', () => {
    const a = SecretBox.ephemeral();
    const b = SecretBox.ephemeral();
    const sealed = a.seal('secret');
    expect(() => b.open(sealed)).toThrow(
      /sealed with key [0-9a-f]{8}, but the key from an ephemeral test key is [0-9a-f]{8}/,
    );
    const parts = sealed.split(':');
    const ct = Buffer.from(parts[5]!, 'base64url');
    ct[0]! ^= 1;
    parts[5] = ct.toString('base64url');
    expect(() => a.open(parts.join(':'))).toThrow(/altered/);
    expect(() => a.open('plain')).toThrow(/not sealed/);
  });

  it('takes SECRETS_KEY as base64 or hex and refuses other lengths', () => {
    const hex = 'ab'.repeat(32);
    const fromHex = SecretBox.fromString(hex);
    const fromB64 = SecretBox.fromString(Buffer.from(hex, 'hex').toString('base64'));
    expect(fromHex.keyId).toBe(fromB64.keyId);
    expect(fromB64.open(fromHex.seal('x'))).toBe('x');
    expect(() => SecretBox.fromString('dG9vIHNob3J0')).toThrow(/SECRETS_KEY must be 32 bytes.*decodes to 9 bytes/);
  });

  it('without SECRETS_KEY creates one key file (0600) in the data folder and keeps using it', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-secrets-'));
    const [first, racing] = await Promise.all([secretBoxFor({ dataDir }), secretBoxFor({ dataDir })]);
    expect(racing.keyId).toBe(first.keyId);
    const file = path.join(dataDir, 'secrets.key');
    if (process.platform !== 'win32') expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    const again = await secretBoxFor({ dataDir });
    expect(again.open(first.seal('kept'))).toBe('kept');
    // SECRETS_KEY wins over the file.
    const env = await secretBoxFor({ dataDir, secretsKey: 'cd'.repeat(32) });
    expect(env.keyId).not.toBe(first.keyId);
    expect(env.source).toBe('SECRETS_KEY');
  });
});
