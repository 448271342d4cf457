/**
 * Runs tasks one at a time per key and different keys in parallel: es2 applies to one domain at
 * a time per domain (a policy write racing a start event must not interleave libvirt calls).
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();
  private readonly counts = new Map<string, number>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const next = previous.then(task, task);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
      const left = (this.counts.get(key) ?? 1) - 1;
      if (left === 0) this.counts.delete(key);
      else this.counts.set(key, left);
    });
    return next;
  }

  /** Tasks queued or running for `key`. */
  pending(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Resolves when every task queued so far has finished (used by shutdown). */
  async drain(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }

  get busyKeys(): number {
    return this.tails.size;
  }
}
