/**
 * `patchops repo add <files…>` (also `repo-add`): each file is hashed from disk, then streamed to the server
 * (POST /api/v1/repository/files with the token of `patchops login`), which checks the hash, stores the bytes and
 * publishes a new signed manifest listing the file. Every file is checked readable before anything is sent, so a
 * typo adds nothing.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { exitWith, storedCredentials, uploadFile } from '../api-client';
import { reportFatal } from '../context';

/** What POST /api/v1/repository/files answers. */
interface RepoFileAdded {
  file: { name: string; sha256: string; size: number };
  version: number;
  previousVersion: number | null;
}

const UNREADABLE: Record<string, string> = {
  ENOENT: 'no such file',
  EISDIR: 'it is a directory',
  EACCES: 'permission denied',
};

/** Refuses (exit 1) unless every file is a readable regular file. */
async function checkReadable(files: string[]): Promise<void> {
  for (const f of files) {
    try {
      const st = await fs.stat(f);
      if (!st.isFile())
        throw Object.assign(new Error('not a regular file'), { code: st.isDirectory() ? 'EISDIR' : '' });
      await fs.access(f, fs.constants.R_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      reportFatal(
        new Error(
          `cannot read ${f}: ${UNREADABLE[code] ?? (e as Error).message}. Nothing was added and no manifest published.`,
        ),
      );
    }
  }
}

/** The sha256 (hex) of a file, read as a stream. */
async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** `repo-add` and `repo add`: one command, registered under both names. */
export function addRepoAddCommand(cmd: Command): void {
  cmd
    .description(
      'upload installer files to the central repository; each publishes a new signed manifest (needs patchops login, admin)',
    )
    .option('--ttl-hours <h>', 'how long the manifest stays valid', String(24 * 7))
    .action(async (files: string[], o: { ttlHours: string }) => {
      const ttlHours = Number(o.ttlHours);
      if (!Number.isFinite(ttlHours) || ttlHours <= 0)
        reportFatal(new Error(`--ttl-hours "${o.ttlHours}" is not a positive number of hours`));
      await storedCredentials().catch(exitWith);
      await checkReadable(files);
      let last: RepoFileAdded | undefined;
      for (const f of files) {
        const name = path.basename(f);
        const query = new URLSearchParams({ name, sha256: await sha256OfFile(f), ttlHours: String(ttlHours) });
        last = await uploadFile<RepoFileAdded>(`/repository/files?${query}`, f).catch((e: unknown) => {
          if (last) console.error(`(the files above were added; ${f} and those after it were not)`);
          return exitWith(e);
        });
        console.log(
          `${last.file.sha256}  ${String(last.file.size).padStart(12)}  ${last.file.name}  manifest version ${last.version}`,
        );
      }
      console.log(`manifest version ${last!.version} published and signed, ${files.length} file(s) added`);
    });
}
