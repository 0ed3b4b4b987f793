/**
 * The zod request and response shapes of /api/v1. Fastify validates requests with them (fastify-type-provider-zod)
 * and @fastify/swagger turns them into the OpenAPI 3.1 document; nothing is written twice.
 */
import { z } from 'zod';
import { TOKEN_SCOPES } from '../db/api-tokens';
import { ROLES } from '../db/identities';

export const ErrorReply = z
  .object({ error: z.string().describe('stable error code, e.g. UNAUTHORIZED, FORBIDDEN'), message: z.string() })
  .describe('every refusal and failure');

/** The errors any authenticated route may answer, for the document. */
export const AUTH_ERRORS = {
  400: ErrorReply,
  401: ErrorReply,
  403: ErrorReply,
  404: ErrorReply,
  409: ErrorReply,
} as const;

export const Scope = z
  .object({
    groups: z.array(z.string().min(1)).optional(),
    tags: z.array(z.string().min(1)).optional(),
    osFamilies: z.array(z.enum(['windows', 'macos', 'linux'])).optional(),
    endpointIds: z.array(z.string().min(1)).optional(),
  })
  .describe('which endpoints; empty = everything');

/** What a command-core verb gives back: the words a person reads and the verb's typed data. */
export const CommandReply = z.object({
  text: z.string(),
  data: z.looseObject({ verb: z.string() }).describe("the verb's data (see the command core's VerbData)"),
});

export const TokenScope = z.enum(TOKEN_SCOPES as [string, ...string[]]);

export const TokenSummary = z.object({
  id: z.string(),
  owner: z.string(),
  name: z.string(),
  scope: TokenScope,
  createdAt: z.string(),
  expiresAt: z.string(),
  revokedAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
});

export const RoleName = z.enum(ROLES as unknown as [string, ...string[]]);
export const Reason = z.object({ reason: z.string().min(1).max(2000).optional() });
export const CycleId = z.object({ id: z.string().min(1).max(200) });
