/** The endpoint (and its site) a node key belongs to. */
export interface KeyEntry {
  endpointId: string;
  site: string | null;
}

/**
 * Node keys resolved so far, by sha256 of the key, with an index by endpoint so a site change can drop every key of
 * that endpoint. Entries stay until forgotten: the gateway forgets revoked keys and endpoints whose site changed.
 */
export class NodeKeyCache {
  private readonly keys = new Map<string, KeyEntry>();
  private readonly byEndpoint = new Map<string, Set<string>>();

  get(hash: string): KeyEntry | undefined {
    return this.keys.get(hash);
  }

  remember(hash: string, entry: KeyEntry): void {
    this.keys.set(hash, entry);
    let set = this.byEndpoint.get(entry.endpointId);
    if (!set) this.byEndpoint.set(entry.endpointId, (set = new Set()));
    set.add(hash);
  }

  forget(hash: string): void {
    const entry = this.keys.get(hash);
    if (!entry) return;
    this.keys.delete(hash);
    const set = this.byEndpoint.get(entry.endpointId);
    set?.delete(hash);
    if (set?.size === 0) this.byEndpoint.delete(entry.endpointId);
  }

  /** Forgets every cached key of an endpoint (its site changed: the next request reads it fresh). */
  forgetEndpoint(endpointId: string): void {
    for (const hash of [...(this.byEndpoint.get(endpointId) ?? [])]) this.forget(hash);
  }

  get size(): number {
    return this.keys.size;
  }
}
