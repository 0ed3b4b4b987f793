import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CodedError, ErrorCode } from '../domain/errors';
import { httpStatusOf, toHttpError } from './errors';

describe('httpStatusOf', () => {
  it.each([
    [ErrorCode.InvalidInput, 400],
    [ErrorCode.Unauthorized, 401],
    [ErrorCode.Forbidden, 403],
    [ErrorCode.NotFound, 404],
    [ErrorCode.Conflict, 409],
    [ErrorCode.ApprovalRefused, 409],
    [ErrorCode.IntegrationFailed, 502],
    [ErrorCode.DependencyDown, 503],
    ['RATE_LIMITED', 429],
    ['SOMETHING_NEW', 500],
  ])('%s → %i', (code, status) => {
    expect(httpStatusOf(code)).toBe(status);
  });
});

describe('toHttpError', () => {
  it('keeps a coded error’s message and maps its code', () => {
    expect(toHttpError(new CodedError(ErrorCode.NotFound, 'no cycle c1'))).toMatchObject({
      status: 404,
      body: { error: 'NOT_FOUND', message: 'no cycle c1' },
      internal: false,
    });
  });

  it('turns a zod error into a 400 naming the fields', () => {
    const r = z.object({ a: z.string() }).safeParse({ a: 1 });
    expect(toHttpError(r.error)).toMatchObject({
      status: 400,
      body: { error: 'INVALID_INPUT', message: expect.stringContaining('a:') },
    });
  });

  it('keeps a Fastify 4xx (bad JSON) and its message', () => {
    const e = Object.assign(new Error("Body is not valid JSON but content-type is set to 'application/json'"), {
      code: 'FST_ERR_CTP_INVALID_JSON_BODY',
      statusCode: 400,
    });
    expect(toHttpError(e)).toMatchObject({ status: 400, body: { error: 'INVALID_INPUT' } });
  });

  it('maps a PostgreSQL data exception wrapped by drizzle to 400 without its SQL or parameters', () => {
    const pg = Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), {
      code: '22021',
      severity: 'ERROR',
    });
    const drizzle = Object.assign(new Error('Failed query: select * from agents where hostname = $1\nparams: evil'), {
      cause: pg,
    });
    const r = toHttpError(drizzle);
    expect(r).toMatchObject({ status: 400, internal: false });
    expect(JSON.stringify(r.body)).not.toMatch(/select|params|evil/);
  });

  it('answers anything else with a 500 that says only that it is logged', () => {
    const r = toHttpError(
      Object.assign(new Error('Failed query: select secret from t\nparams: hunter2'), {
        cause: Object.assign(new Error('relation "t" does not exist'), { code: '42P01', severity: 'ERROR' }),
      }),
    );
    expect(r).toMatchObject({ status: 500, internal: true, body: { error: 'INTERNAL' } });
    expect(JSON.stringify(r.body)).not.toMatch(/select|hunter2|relation/);
  });
});
