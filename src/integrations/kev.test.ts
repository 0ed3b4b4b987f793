import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../domain/errors';
import { BUNDLED_KEV_PATH, kevCatalog, loadKev } from './kev';

describe('loadKev', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'patchops-kev-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the bundled CISA catalog', async () => {
    const k = await loadKev();
    expect(BUNDLED_KEV_PATH).toMatch(/assets\/kev\/known_exploited_vulnerabilities\.json$/);
    expect(k.size).toBeGreaterThan(1000);
    expect(k.skipped).toBe(0);
    expect(k.catalogVersion).toMatch(/^\d{4}\.\d{2}\.\d{2}$/);
    expect(k.entry('CVE-2024-3400')).toMatchObject({
      vendorProject: 'Palo Alto Networks',
      product: 'PAN-OS',
      dateAdded: '2024-04-12',
    });
    expect(k.has('CVE-2021-44228')).toBe(true); // Log4Shell
    expect(k.has('CVE-1999-0001')).toBe(false);
  });

  it('reads an updated copy from a path', async () => {
    const path = join(dir, 'kev.json');
    await writeFile(
      path,
      JSON.stringify({
        catalogVersion: '2099.01.01',
        vulnerabilities: [{ cveID: 'CVE-2099-0001', vendorProject: 'Future', product: 'Thing' }],
      }),
    );
    const k = await loadKev(path);
    expect(k.catalogVersion).toBe('2099.01.01');
    expect(k.has('CVE-2099-0001')).toBe(true);
    expect(k.has('CVE-2024-3400')).toBe(false);
  });

  it('says what is wrong with a missing file', async () => {
    const path = join(dir, 'nope.json');
    await expect(loadKev(path)).rejects.toMatchObject({
      code: ErrorCode.NotFound,
      message: expect.stringContaining(`could not be read from ${path}`),
    });
  });

  it('says what is wrong with a file that is not JSON', async () => {
    const path = join(dir, 'broken.json');
    await writeFile(path, '{ "catalogVersion": ');
    await expect(loadKev(path)).rejects.toMatchObject({
      code: ErrorCode.InvalidInput,
      message: expect.stringContaining('is not valid JSON'),
    });
  });

  it('says what is wrong with JSON that is not a catalog', async () => {
    const path = join(dir, 'other.json');
    await writeFile(path, JSON.stringify({ hello: 'world' }));
    await expect(loadKev(path)).rejects.toThrow(/not a CISA KEV catalog/);
  });
});

describe('kevCatalog', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'patchops-kev-catalog-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the catalog once and hands the same index to every caller', async () => {
    const catalog = kevCatalog();
    const [a, b] = await Promise.all([catalog(), catalog()]);
    expect(a).toBe(b);
    expect(await catalog()).toBe(a);
    expect(a.knownExploited(['CVE-2024-3400'])).toEqual(['CVE-2024-3400']);
  });

  it('tries a failed read again on the next call instead of keeping the failure', async () => {
    const path = join(dir, 'later.json');
    const catalog = kevCatalog(path);
    await expect(catalog()).rejects.toMatchObject({ code: ErrorCode.NotFound });
    await writeFile(path, JSON.stringify({ vulnerabilities: [{ cveID: 'CVE-2026-0001' }] }));
    expect((await catalog()).knownExploited(['CVE-2026-0001'])).toEqual(['CVE-2026-0001']);
  });
});
