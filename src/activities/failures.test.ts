import { ApplicationFailure } from '@temporalio/activity';
import { describe, expect, it } from 'vitest';
import { CodedError, ErrorCode } from '../domain/errors';
import { withFailures } from './failures';

describe('withFailures', () => {
  it.each([
    { retryable: false, nonRetryable: true },
    { retryable: true, nonRetryable: false },
  ])(
    'turns a CodedError (retryable $retryable) into an ApplicationFailure typed with its code',
    async ({ retryable, nonRetryable }) => {
      const error = new CodedError(ErrorCode.IntegrationFailed, 'ServiceNow said no', { retryable });
      const acts = withFailures({
        async openChange(): Promise<string> {
          throw error;
        },
      });
      const thrown = await acts.openChange().catch((e: unknown) => e);
      expect(thrown).toBeInstanceOf(ApplicationFailure);
      expect(thrown).toMatchObject({ type: ErrorCode.IntegrationFailed, message: 'ServiceNow said no', nonRetryable });
      expect((thrown as ApplicationFailure).cause).toBe(error);
    },
  );

  it('throws any other error as it is', async () => {
    const error = new Error('connection reset');
    const acts = withFailures({
      async recordStage(): Promise<void> {
        throw error;
      },
    });
    await expect(acts.recordStage()).rejects.toBe(error);
  });

  it('passes arguments and results through, for every activity of the object', async () => {
    const acts = withFailures({
      async add(input: { a: number; b: number }): Promise<number> {
        return input.a + input.b;
      },
      async echo(message: string): Promise<string> {
        return `echo: ${message}`;
      },
    });
    expect(Object.keys(acts)).toEqual(['add', 'echo']);
    await expect(acts.add({ a: 2, b: 3 })).resolves.toBe(5);
    await expect(acts.echo('hi')).resolves.toBe('echo: hi');
  });
});
