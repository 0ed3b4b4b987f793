/**
 * Adding a file to the central repository (admin): POST /repository/files takes the file as the raw request body
 * (application/octet-stream) with its name and sha256 in the query. The body is streamed to a temporary file in the
 * repository folder while it is hashed (receive-file.ts); a file past PATCHOPS_REPO_MAX_UPLOAD_MB is 413, bytes that
 * do not hash to the sha256 given are 400, and either way nothing is kept. Then the file is renamed to its sha256 and
 * a new signed manifest listing it is published (addManifestFiles, audited as the token's person).
 * `patchops repo add` calls it once per file.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DEFAULT_REPO_MAX_UPLOAD_MB } from '../../config/index';
import { addManifestFiles } from '../../db/repository';
import { CodedError, ErrorCode } from '../../domain/errors';
import { HttpError, HttpErrorCode } from '../../server/errors';
import { isRepositoryFileName } from '../../shared/package-names';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { discard, receiveFile, uploadTooLarge } from '../receive-file';
import { AUTH_ERRORS, ErrorReply } from '../schemas';
import { DEFAULT_TTL_HOURS, FileEntry, MAX_TTL_HOURS, repositoryOf } from './repository-shared';

const OCTET_STREAM = 'application/octet-stream';

const UploadQuery = z.object({
  name: z
    .string()
    .refine(
      isRepositoryFileName,
      'expected a plain file name: no directory parts or "..", not starting with "-" or "."',
    )
    .describe('the name agents and `repo list` show, e.g. tool_1.0_amd64.deb'),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex digits')
    .describe("the file's sha256 (hex): bytes that hash otherwise are refused with 400"),
  ttlHours: z.coerce
    .number()
    .positive()
    .max(MAX_TTL_HOURS)
    .default(DEFAULT_TTL_HOURS)
    .describe('how long the new manifest stays valid'),
});

/** The request body as a stream: the octet-stream parser's, or an empty one when the request has no body. */
function bodyStream(req: FastifyRequest): Readable {
  if (req.body instanceof Readable) return req.body;
  if (req.body === undefined || req.body === null) return Readable.from([]);
  throw new HttpError(
    HttpErrorCode.UnsupportedMediaType,
    `send the file's bytes as the request body with content-type ${OCTET_STREAM}`,
  );
}

/** A Content-Length over the limit is refused before a byte is read. */
function refuseDeclaredSize(req: FastifyRequest, maxBytes: number): void {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) throw uploadTooLarge(maxBytes, declared);
}

const exists = (file: string) =>
  fs.access(file).then(
    () => true,
    () => false,
  );

export function repositoryUploadRoutes(app: FastifyInstance, deps: ApiDeps): void {
  // Scoped to this route: its body is handed over as the request stream, unread (bodyLimit does not apply to it;
  // receiveFile enforces PATCHOPS_REPO_MAX_UPLOAD_MB instead).
  void app.register(async (scope) => {
    scope.addContentTypeParser(OCTET_STREAM, (_req, payload, done) => done(null, payload));
    scope.withTypeProvider<ZodTypeProvider>().post(
      '/repository/files',
      {
        schema: {
          summary: 'Add one file (the raw request body) to the repository and publish a new signed manifest listing it',
          description: `The body is the file's bytes (${OCTET_STREAM}), streamed to disk and hashed as it arrives. Larger than PATCHOPS_REPO_MAX_UPLOAD_MB (default ${DEFAULT_REPO_MAX_UPLOAD_MB} MB): 413. Not matching \`sha256\`: 400. Either way nothing is kept and no manifest published. A file with the sha256 of a listed one replaces that entry (renamed).`,
          tags: ['repository'],
          consumes: [OCTET_STREAM],
          querystring: UploadQuery,
          body: z.any().meta({ type: 'string', format: 'binary', description: "the file's bytes" }),
          response: {
            200: z.object({
              file: FileEntry.describe('the file added'),
              version: z.number().int().describe('the manifest version published'),
              previousVersion: z.number().int().nullable().describe('null: this is the first manifest'),
              files: z.array(FileEntry).describe('what the new manifest lists'),
            }),
            ...AUTH_ERRORS,
            413: ErrorReply,
            415: ErrorReply,
          },
        },
      },
      async (req) => {
        const c = await authorizeRequest(deps.db, req, 'admin');
        const repo = repositoryOf(deps);
        const maxBytes = repo.maxUploadBytes ?? DEFAULT_REPO_MAX_UPLOAD_MB * 1024 * 1024;
        refuseDeclaredSize(req, maxBytes);
        const expected = req.query.sha256.toLowerCase();
        const received = await receiveFile(bodyStream(req), { dir: repo.dir, maxBytes });
        if (received.sha256 !== expected) {
          await discard(received.tempPath);
          throw new CodedError(
            ErrorCode.InvalidInput,
            `the ${received.size} bytes received hash to sha256 ${received.sha256}, not ${expected} as given: the file changed or was cut on the way. Nothing was stored and no manifest published.`,
          );
        }
        const stored = path.join(repo.dir, received.sha256);
        const existed = await exists(stored);
        await fs.rename(received.tempPath, stored);
        const file = { name: req.query.name, sha256: received.sha256, size: received.size };
        try {
          const m = await addManifestFiles(deps.db, repo.box, [file], { ttlHours: req.query.ttlHours, by: c.identity });
          return {
            file,
            version: m.version,
            previousVersion: m.previousVersion,
            files: m.files.map((f) => ({ name: f.name, sha256: f.sha256, size: f.size })),
          };
        } catch (e) {
          if (!existed) await fs.rm(stored, { force: true });
          throw e;
        }
      },
    );
  });
}
