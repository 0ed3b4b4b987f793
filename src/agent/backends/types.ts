import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';

/** One package manager on this endpoint. Every method reports; none throws for a tool's failure. */
export interface Backend {
  /** apt | dnf | zypper | windows-update | winget | softwareupdate | brew | fwupd */
  readonly name: string;
  /** What is missing now. */
  scan(): Promise<FoundPatch[]>;
  /** Installs exact package versions (a dry run first where the tool has one). */
  install(pkgs: PackageRef[]): Promise<OperationResult>;
  /** Returns packages to the given earlier versions (or undoes the last transaction). */
  rollback(pkgs: PackageRef[], previousVersions: Record<string, string>): Promise<OperationResult>;
  /** Installed version of each package (null when not installed). */
  installedVersions(names: string[]): Promise<Map<string, string | null>>;
  /** Installed software for the inventory. */
  inventory(): Promise<Array<{ source: string; name: string; version: string; vendor?: string }>>;
  /** Whether the OS says a reboot is pending. */
  rebootPending?(): Promise<boolean>;
}

export interface OperationResult {
  ok: boolean;
  error?: string;
  log: string;
  rebootRequired?: boolean;
}
