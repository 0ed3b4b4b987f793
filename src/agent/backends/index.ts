import type { Exec } from '../exec';
import { AptBackend } from './apt';
import type { Backend } from './types';

export interface BackendOptions {
  exec?: Exec;
  /** apt: operate on another root (tests, chroots). */
  aptRoot?: string;
}

/** Builds the named backends, keyed by every manager name they answer for. */
export function createBackends(names: string[], o: BackendOptions = {}): Map<string, Backend> {
  const out = new Map<string, Backend>();
  for (const name of names) {
    switch (name) {
      case 'apt':
        out.set('apt', new AptBackend({ root: o.aptRoot, exec: o.exec }));
        break;
      default:
        throw new Error(`unknown package manager backend "${name}"`);
    }
  }
  return out;
}
