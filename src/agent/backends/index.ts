import type { Exec } from '../exec';
import { AptBackend } from './apt';
import { BrewBackend } from './brew';
import { DnfBackend } from './dnf';
import { FwupdBackend } from './fwupd';
import { SoftwareUpdateBackend } from './softwareupdate';
import { WindowsUpdateBackend } from './windows-update';
import { WingetBackend } from './winget';
import { ZypperBackend } from './zypper';
import type { Backend } from './types';

export interface BackendOptions {
  exec?: Exec;
  /** apt: operate on another root (tests, chroots). */
  aptRoot?: string;
  /** dnf and zypper: operate on another root (tests, chroots). */
  rpmRoot?: string;
}

/** Builds the named backends, keyed by every manager name they answer for. */
export function createBackends(names: string[], o: BackendOptions = {}): Map<string, Backend> {
  const out = new Map<string, Backend>();
  for (const name of names) {
    switch (name) {
      case 'apt':
        out.set('apt', new AptBackend({ root: o.aptRoot, exec: o.exec }));
        break;
      case 'dnf': {
        const b = new DnfBackend({ exec: o.exec, root: o.rpmRoot });
        out.set('dnf', b);
        out.set('yum', b);
        break;
      }
      case 'zypper':
        out.set('zypper', new ZypperBackend({ exec: o.exec, root: o.rpmRoot }));
        break;
      case 'windows-update':
        out.set('windows-update', new WindowsUpdateBackend(o.exec));
        break;
      case 'winget':
        out.set('winget', new WingetBackend(o.exec));
        break;
      case 'softwareupdate':
        out.set('softwareupdate', new SoftwareUpdateBackend(o.exec));
        break;
      case 'brew':
        out.set('brew', new BrewBackend(o.exec));
        break;
      case 'fwupd':
        out.set('fwupd', new FwupdBackend({ exec: o.exec }));
        break;
      default:
        throw new Error(`unknown package manager backend "${name}"`);
    }
  }
  return out;
}
