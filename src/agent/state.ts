/** The agent's state directory: its identity (node key), the pinned manifest key, and what it must remember. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { pendingRebootSchema } from './reboot';

const stateSchema = z.object({
  serverUrl: z.string(),
  endpointId: z.string(),
  nodeKey: z.string(),
  manifestSigningKey: z.string(),
  machineId: z.string(),
  lastManifestVersion: z.number().int().default(0),
  /** package manager → package → version installed before our last install (for rollback without a payload). */
  previousVersions: z.record(z.string(), z.record(z.string(), z.string())).default({}),
  /** A restart planned after an install, carried out by the agent's loop when due (see reboot.ts). */
  pendingReboot: pendingRebootSchema.optional(),
});
export type AgentState = z.infer<typeof stateSchema>;

export class StateStore {
  readonly file: string;
  constructor(readonly dir: string) {
    this.file = path.join(dir, 'state.json');
  }

  async load(): Promise<AgentState | null> {
    try {
      return stateSchema.parse(JSON.parse(await fs.readFile(this.file, 'utf8')));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new Error(
        `the agent state file ${this.file} is unreadable (${(e as Error).message}); move it away to enrol again`,
        { cause: e },
      );
    }
  }

  /** Writes atomically (temp file + rename), readable by the agent's user only. */
  async save(state: AgentState): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o711 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(state, null, 2), { mode: 0o600 });
    await fs.rename(tmp, this.file);
  }

  get downloads(): string {
    return path.join(this.dir, 'downloads');
  }
  /**
   * Where logged-in users drop requests for the agent (`patchops agent --defer-reboot`): writable by everyone,
   * sticky and not listable (mode 1733), inside a state directory others may only traverse (0711).
   */
  get requestsDir(): string {
    return path.join(this.dir, 'requests');
  }
  get deferFile(): string {
    return path.join(this.requestsDir, 'defer-reboot');
  }

  async ensureRequestsDir(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o711 });
    await fs.mkdir(this.requestsDir, { recursive: true });
    if (process.platform !== 'win32') {
      await fs.chmod(this.dir, 0o711);
      await fs.chmod(this.requestsDir, 0o1733);
    }
  }
}
