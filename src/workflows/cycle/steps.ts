/**
 * The small steps every stage takes: record a stage, record a control, send a best-effort notification.
 */
import { log } from '@temporalio/workflow';
import type { CycleStage } from '../../domain/cycle';
import { failureMessage } from '../failures';
import type { CycleActs } from './proxies';
import { iso, type CycleState } from './state';

/**
 * Runs a notification the cycle can do without (chat, mail, a change note): a failure is logged through the
 * workflow logger with its reason, handed to `onFailure` if given, and never fails the cycle. Returns the
 * call's result, or undefined when it failed.
 */
export async function bestEffort<T>(
  name: string,
  fn: () => Promise<T>,
  onFailure?: (reason: string) => void,
): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const reason = failureMessage(err);
    log.warn(`${name} failed; the cycle goes on`, { reason });
    onFailure?.(reason);
    return undefined;
  }
}

/**
 * Records a control in the audit log. Retried until it is recorded (a pause also holds the installs not yet
 * handed out), never dropped after a few tries: a database outage shows as the pending activity's last failure.
 * Only a non-retryable failure ends it, loudly.
 */
export async function control(
  s: CycleState,
  a: CycleActs,
  action: string,
  by: string,
  details: Record<string, unknown>,
): Promise<void> {
  try {
    await a.acts.recordControl({ cycleId: s.cycleId, action, by, details });
  } catch (err) {
    log.error('a control could not be recorded in the audit log', { action, by, error: String(err) });
  }
}

/** Moves the cycle to `stage`: recorded (status row, audit, stage event), then told in chat (best effort). */
export async function setStage(
  s: CycleState,
  a: CycleActs,
  stage: CycleStage,
  text: string,
  detail: Record<string, unknown> = {},
  reason?: string,
): Promise<void> {
  s.status.stage = stage;
  s.status.updatedAt = iso();
  await a.acts.recordStage({
    cycleId: s.cycleId,
    stage,
    detail: { text, ...detail },
    status: s.status,
    ...(reason !== undefined ? { reason } : {}),
  });
  await bestEffort('the stage notification', () => a.notify.notifyStage({ cycleId: s.cycleId, stage, text }));
}
