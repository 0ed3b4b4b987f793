/**
 * `patchops agent-sim --ndjson`: a simulated fleet as a child process that another program drives — the end-to-end
 * suite (test/helpers/sim-process.ts) and the cycle benchmark, whose fleets run in processes of their own. The
 * fleet writes what it does to standard output, one JSON object a line (`SimOutput`), and reads commands from
 * standard input, one JSON object a line (`SimCommand`). The end of standard input stops the fleet, so a parent that
 * exits or dies takes its fleets with it.
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import type { SimEvent, SimFleet, SimStats } from './fleet';

export const simCommandSchema = z.discriminatedUnion('cmd', [
  /** From now on, installs fail on exactly these machine ids (answered `ack`). */
  z.object({ cmd: z.literal('fail-installs-on'), machineIds: z.array(z.string().min(1)) }),
  /** Answered with a `stats` line. */
  z.object({ cmd: z.literal('stats') }),
  /** Stops the fleet: its polls end and the process exits 0. */
  z.object({ cmd: z.literal('stop') }),
]);
export type SimCommand = z.infer<typeof simCommandSchema>;

export type SimOutput =
  | SimEvent
  /** Every endpoint has enrolled and sent its inventory; the poll loops start now. */
  | { type: 'ready'; enrolled: number }
  | { type: 'stats'; stats: SimStats }
  | { type: 'ack'; cmd: SimCommand['cmd'] }
  /** A command line that could not be read; the fleet goes on. */
  | { type: 'error'; message: string };

/** One output line (with its newline). */
export const outputLine = (o: SimOutput): string => `${JSON.stringify(o)}\n`;

/**
 * Reads commands from `input` for `fleet` until `input` ends, then calls `stop` (as does a `stop` command).
 * Answers go to `write`.
 */
export function serveCommands(fleet: SimFleet, input: Readable, write: (o: SimOutput) => void, stop: () => void): void {
  const lines = createInterface({ input, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (!line.trim()) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      write({ type: 'error', message: `not JSON: ${line.slice(0, 200)}` });
      return;
    }
    const parsed = simCommandSchema.safeParse(json);
    if (!parsed.success) {
      write({
        type: 'error',
        message: `not a command (fail-installs-on, stats, stop): ${parsed.error.issues[0]?.message ?? 'invalid'}`,
      });
      return;
    }
    const c = parsed.data;
    if (c.cmd === 'fail-installs-on') {
      fleet.failInstallsOn(c.machineIds);
      write({ type: 'ack', cmd: c.cmd });
    } else if (c.cmd === 'stats') {
      write({ type: 'stats', stats: fleet.stats });
    } else {
      write({ type: 'ack', cmd: c.cmd });
      stop();
    }
  });
  lines.once('close', stop);
}
