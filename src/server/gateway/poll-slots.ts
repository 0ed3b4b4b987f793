/**
 * Counts the long polls held open: per agent (one agent's excess polls are refused) and in this process (every held
 * poll is a socket; past `maxHeld` a poll is answered at once instead of held).
 */
export class PollSlots {
  private readonly openByAgent = new Map<string, number>();
  /** Long polls held open now. */
  held = 0;
  /** Polls answered at once because `maxHeld` were held. */
  notHeld = 0;

  constructor(
    readonly maxPerAgent: number,
    readonly maxHeld: number,
  ) {}

  /** Polls of this agent open now. */
  openOf(endpointId: string): number {
    return this.openByAgent.get(endpointId) ?? 0;
  }

  /**
   * Opens a poll of the agent; `hold` says whether it may be held open (it asked to wait and a slot is free).
   * Call `leave` when it is answered.
   */
  enter(endpointId: string, wantsToWait: boolean): { hold: boolean; leave: () => void } {
    const hold = wantsToWait && this.held < this.maxHeld;
    if (wantsToWait && !hold) this.notHeld += 1;
    this.openByAgent.set(endpointId, this.openOf(endpointId) + 1);
    if (hold) this.held += 1;
    return {
      hold,
      leave: () => {
        if (hold) this.held -= 1;
        const left = this.openOf(endpointId) - 1;
        if (left <= 0) this.openByAgent.delete(endpointId);
        else this.openByAgent.set(endpointId, left);
      },
    };
  }
}
