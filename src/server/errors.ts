/**
 * The one error → HTTP mapping of the server. Every route's uncaught error ends here: a coded error gets
 * the status of its code (httpStatusOf) and its own message (coded messages are written for users);
 * Fastify's own refusals (bad JSON, wrong content type, body too large, bad URL) keep their 4xx; a
 * PostgreSQL data exception (a value the database cannot take: out of range, NUL byte, not a date) is the
 * request's fault, 400. Anything else is a 500 whose body says only that it is logged, with the request
 * id: never SQL, parameters or a stack.
 */
import { z } from 'zod';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode, isCodedError } from '../domain/errors';
import type { Logger } from '../logging';
import { escapeHtml } from '../shared/html-escape';

/** Codes of the HTTP layer itself, beside the domain's ErrorCode. */
export const HttpErrorCode = {
  RateLimited: 'RATE_LIMITED',
  PayloadTooLarge: 'PAYLOAD_TOO_LARGE',
  UnsupportedMediaType: 'UNSUPPORTED_MEDIA_TYPE',
  Internal: 'INTERNAL',
  /** The agent gateway: a node key whose enrolment waits for an admin's approval. */
  EnrollmentPending: 'ENROLLMENT_PENDING',
  /** The agent gateway: one long poll too many from the same agent (with Retry-After). */
  TooManyPolls: 'TOO_MANY_POLLS',
  /** The database is overloaded or away: retry after Retry-After. */
  Overloaded: 'OVERLOADED',
} as const;

const STATUS: Record<string, number> = {
  [ErrorCode.InvalidInput]: 400,
  [ErrorCode.PolicyInvalid]: 400,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.Forbidden]: 403,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.ApprovalRefused]: 409,
  [ErrorCode.VerificationFailed]: 422,
  [ErrorCode.IntegrationFailed]: 502,
  [ErrorCode.DependencyDown]: 503,
  [ErrorCode.TemporalCliUnavailable]: 503,
  [ErrorCode.ConfigInvalid]: 500,
  [HttpErrorCode.RateLimited]: 429,
  [HttpErrorCode.PayloadTooLarge]: 413,
  [HttpErrorCode.UnsupportedMediaType]: 415,
  [HttpErrorCode.Internal]: 500,
  [HttpErrorCode.EnrollmentPending]: 403,
  [HttpErrorCode.TooManyPolls]: 429,
  [HttpErrorCode.Overloaded]: 503,
};

/** The HTTP status for an error code; an unknown code is the server's fault (500). */
export function httpStatusOf(code: string): number {
  return STATUS[code] ?? 500;
}

/** The body every error response has (JSON routes), or the page text (HTML routes). */
export interface ErrorBody {
  error: string;
  message: string;
}

/** An error that also sets response headers (Retry-After, clearing a cookie); its code maps like any other. */
export class HttpError extends Error {
  constructor(
    readonly code: (typeof HttpErrorCode)[keyof typeof HttpErrorCode] | ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The SQLSTATE of a PostgreSQL error anywhere in the cause chain (drizzle wraps pg's error). */
function sqlStateOf(e: unknown): string | undefined {
  for (
    let cur = e, depth = 0;
    cur && typeof cur === 'object' && depth < 5;
    cur = (cur as { cause?: unknown }).cause, depth++
  ) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && 'severity' in cur) return code;
  }
  return undefined;
}

/** Maps any thrown value to a status and a body that is safe to show. `internal` marks what must be logged. */
export function toHttpError(e: unknown): {
  status: number;
  body: ErrorBody;
  internal: boolean;
  headers?: Record<string, string>;
} {
  if (isCodedError(e))
    return {
      status: httpStatusOf(e.code),
      body: { error: e.code, message: e.message },
      internal: httpStatusOf(e.code) >= 500,
    };
  if (e instanceof HttpError)
    return {
      status: httpStatusOf(e.code),
      body: { error: e.code, message: e.message },
      internal: false,
      headers: e.headers,
    };
  if (e instanceof z.ZodError) {
    const message = e.issues
      .slice(0, 10)
      .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
      .join('; ');
    return { status: 400, body: { error: ErrorCode.InvalidInput, message }, internal: false };
  }
  const fe = e as Partial<FastifyError> | null;
  if (
    fe &&
    typeof fe.statusCode === 'number' &&
    fe.statusCode >= 400 &&
    fe.statusCode < 500 &&
    typeof fe.code === 'string' &&
    fe.code.startsWith('FST_')
  ) {
    const code =
      fe.statusCode === 413
        ? HttpErrorCode.PayloadTooLarge
        : fe.statusCode === 415
          ? HttpErrorCode.UnsupportedMediaType
          : ErrorCode.InvalidInput;
    return { status: fe.statusCode, body: { error: code, message: fastifyMessage(fe) }, internal: false };
  }
  if (fe && Array.isArray(fe.validation)) {
    return {
      status: 400,
      body: { error: ErrorCode.InvalidInput, message: fe.message ?? 'the request is not valid' },
      internal: false,
    };
  }
  const state = sqlStateOf(e);
  if (state?.startsWith('22')) {
    return {
      status: 400,
      body: {
        error: ErrorCode.InvalidInput,
        message:
          'a value in the request cannot be stored or compared (out of range, not a valid date, or text with a NUL byte): correct it and retry',
      },
      internal: false,
    };
  }
  if (e instanceof URIError)
    return {
      status: 400,
      body: { error: ErrorCode.InvalidInput, message: 'the request has malformed percent-encoding' },
      internal: false,
    };
  return {
    status: 500,
    body: { error: HttpErrorCode.Internal, message: 'the server could not handle the request; it is logged' },
    internal: true,
  };
}

/** Fastify's refusal texts name what was wrong with the request (never server internals); keep them short. */
function fastifyMessage(e: Partial<FastifyError>): string {
  return (e.message ?? 'the request is not valid').slice(0, 300);
}

function wantsHtml(req: FastifyRequest): boolean {
  const accept = String(req.headers.accept ?? '');
  return accept.includes('text/html') && !accept.includes('application/json');
}

/** Sends the error response for `e`: JSON for API callers, a small page for browsers. */
export function sendError(req: FastifyRequest, reply: FastifyReply, e: unknown, log: Logger): FastifyReply {
  const r = toHttpError(e);
  if (r.internal)
    log.error({ err: e, reqId: req.id, method: req.method, route: req.routeOptions?.url }, 'request failed');
  else log.debug({ code: r.body.error, reqId: req.id }, 'request refused');
  const message = r.internal ? `${r.body.message} (request ${req.id})` : r.body.message;
  for (const [k, v] of Object.entries(r.headers ?? {})) reply.header(k, v);
  reply.code(r.status).header('cache-control', 'no-store');
  if (wantsHtml(req)) {
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .send(
        `<!doctype html><meta charset="utf-8"><title>${r.status}</title><h1>${r.status}</h1><p>${escapeHtml(message)}</p><p><a href="/">Back</a></p>`,
      );
  }
  return reply.header('content-type', 'application/json; charset=utf-8').send({ error: r.body.error, message });
}

/** Installs the one error handler for every route of `app` (and every plugin scope under it). */
export function installErrorHandler(app: FastifyInstance, log: Logger): void {
  app.setErrorHandler((error, req, reply) => sendError(req, reply, error, log));
}
