/**
 * The agent's real JobRunner around the backends a test gives it: a fresh state, a recording rebooter, no
 * repository files. For the backend round trips (apt, dnf, zypper, fwupd) and the grammar tests.
 */
import { pino } from 'pino';
import type { Backend } from '../../src/agent/backends/types';
import { RecordingRebooter } from '../../src/agent/reboot';
import { JobRunner } from '../../src/agent/runner';
import type { AgentState } from '../../src/agent/state';

export function testJobRunner(
  backends: Array<[string, Backend]>,
  downloadDir: string,
): { runner: JobRunner; state: () => AgentState } {
  let state: AgentState = {
    serverUrl: 'x',
    endpointId: 'e',
    nodeKey: 'k',
    manifestSigningKey: '',
    machineId: 'm',
    lastManifestVersion: 0,
    previousVersions: {},
  };
  const runner = new JobRunner({
    backends: new Map(backends),
    getState: () => state,
    updateState: async (p) => {
      state = { ...state, ...p };
    },
    rebooter: new RecordingRebooter(),
    fetchManifest: () => Promise.reject(new Error('no files in this test')),
    sources: () => [],
    downloadDir,
    log: pino({ level: 'silent' }),
  });
  return { runner, state: () => state };
}
