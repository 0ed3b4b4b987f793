import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { obtainTemporalCli } from './cli-binary';

async function tempDir() {
  return fs.mkdtemp(path.join(os.tmpdir(), 'patchops-cli-'));
}

async function fakeCli(dir: string): Promise<string> {
  const file = path.join(dir, 'temporal');
  await fs.writeFile(file, '#!/bin/sh\necho "temporal version 9.9.9 (Server 1, UI 1)"\n', { mode: 0o755 });
  return file;
}

describe('obtainTemporalCli', () => {
  it('uses TEMPORAL_CLI first, and says what is wrong with a bad one', async () => {
    const dir = await tempDir();
    const cli = await fakeCli(dir);
    await expect(obtainTemporalCli({ explicitPath: cli, cacheDir: dir, env: { PATH: '' } })).resolves.toEqual({
      path: cli,
      route: 'TEMPORAL_CLI',
    });
    await expect(
      obtainTemporalCli({ explicitPath: path.join(dir, 'nope'), cacheDir: dir, env: { PATH: '' } }),
    ).rejects.toThrow(/TEMPORAL_CLI=.*nope: does not exist/);
  });

  it('finds temporal on PATH, then the cached build', async () => {
    const binDir = await tempDir();
    const cli = await fakeCli(binDir);
    await expect(obtainTemporalCli({ cacheDir: await tempDir(), env: { PATH: binDir } })).resolves.toEqual({
      path: cli,
      route: 'PATH',
    });

    const cacheDir = await tempDir();
    await fs.mkdir(path.join(cacheDir, 'bin'));
    const cached = await fakeCli(path.join(cacheDir, 'bin'));
    await expect(obtainTemporalCli({ cacheDir, env: { PATH: '' } })).resolves.toEqual({ path: cached, route: 'cache' });
  });

  it('names every route tried when none works', async () => {
    const cacheDir = await tempDir();
    const err = await obtainTemporalCli({
      cacheDir,
      env: { PATH: '' },
      goPath: path.join(cacheDir, 'no-go'),
      allowDownload: false,
    }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).toMatch(/TEMPORAL_CLI: not set/);
    expect(message).toMatch(/PATH: no `temporal` executable on PATH/);
    expect(message).toMatch(/cache: no working binary at/);
    expect(message).toMatch(/go install github\.com\/temporalio\/cli\/cmd\/temporal@v1\.5\.1: .*ENOENT/);
    expect(message).toMatch(/set TEMPORAL_CLI/);
  });
});
