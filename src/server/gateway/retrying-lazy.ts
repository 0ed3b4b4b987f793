/** A value loaded once on first use; a failed load is not kept, so the next `get` tries again. */
export class RetryingLazy<T> {
  private value: Promise<T> | undefined;

  constructor(private readonly load: () => Promise<T>) {}

  get(): Promise<T> {
    this.value ??= this.load().catch((e: unknown) => {
      this.value = undefined;
      throw e;
    });
    return this.value;
  }
}
