/**
 * The patch cycle's activity proxies, one per kind of call (timeouts and retries differ). Stages take them
 * as an argument, so what a stage may call is in its signature. Every activity heartbeats while it runs
 * (activities/heartbeat.ts): with a 30 s heartbeat timeout, an activity whose worker died is retried on another
 * within about half a minute, not after its start-to-close timeout.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { CycleActivities } from '../../activities/cycle';
import { HEARTBEAT_TIMEOUT } from '../heartbeat-timeout';

export const cycleActivities = {
  /** Database steps: retried until they succeed (a database outage shows as the pending activity's last failure). */
  acts: proxyActivities<CycleActivities>({
    startToCloseTimeout: '5 minutes',
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    retry: { maximumInterval: '30 seconds' },
  }),
  /** Long waits on agent jobs, which heartbeat aggregate progress. */
  wait: proxyActivities<CycleActivities>({
    startToCloseTimeout: '30 days',
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    retry: { maximumInterval: '30 seconds' },
  }),
  /** Chat, mail and change-desk calls: a few tries, then the cycle carries on (see bestEffort). */
  notify: proxyActivities<CycleActivities>({
    startToCloseTimeout: '1 minute',
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    retry: { maximumAttempts: 3, maximumInterval: '10 seconds' },
  }),
  /**
   * Change-desk calls the cycle depends on (open, poll): a few tries, then the workflow decides. An outage
   * (retries ran out) pauses and asks; a refusal (non-retryable, e.g. ServiceNow's 403) ends the cycle FAILED.
   */
  desk: proxyActivities<CycleActivities>({
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    retry: { maximumAttempts: 4, maximumInterval: '30 seconds' },
  }),
};

export type CycleActs = typeof cycleActivities;
