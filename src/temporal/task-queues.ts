/** Every task queue, in one place. */
export const TaskQueue = {
  /** Patch-cycle, wave, scan and report workflows and their activities. */
  cycles: 'patchops-cycles',
} as const;
export type TaskQueue = (typeof TaskQueue)[keyof typeof TaskQueue];
