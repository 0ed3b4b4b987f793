/**
 * How long an activity may go without a heartbeat before Temporal retries it, its worker presumed dead. Every
 * activity heartbeats every 5 s while it runs (activities/heartbeat.ts), so after a worker dies its activities are
 * retried on another worker within about this long instead of after their start-to-close timeout (minutes).
 * Changing activity options does not break replay of running workflows.
 */
export const HEARTBEAT_TIMEOUT = '30 seconds';
