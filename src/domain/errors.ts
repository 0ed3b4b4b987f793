/**
 * Every error that reaches a user or crosses a process boundary carries a stable string code
 * (bolt-js style). Activities turn a CodedError into an ApplicationFailure whose `type` is the code.
 */
export const ErrorCode = {
  ConfigInvalid: 'CONFIG_INVALID',
  NotFound: 'NOT_FOUND',
  InvalidInput: 'INVALID_INPUT',
  Conflict: 'CONFLICT',
  Unauthorized: 'UNAUTHORIZED',
  Forbidden: 'FORBIDDEN',
  TemporalCliUnavailable: 'TEMPORAL_CLI_UNAVAILABLE',
  DependencyDown: 'DEPENDENCY_DOWN',
  ApprovalRefused: 'APPROVAL_REFUSED',
  PolicyInvalid: 'POLICY_INVALID',
  IntegrationFailed: 'INTEGRATION_FAILED',
  VerificationFailed: 'VERIFICATION_FAILED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class CodedError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CodedError';
    this.retryable = options?.retryable ?? false;
  }
  readonly retryable: boolean;
}

export function isCodedError(e: unknown): e is CodedError {
  return e instanceof CodedError;
}
