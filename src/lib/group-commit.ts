// Group commit: callers each wait until their item is durable, but the items of concurrent callers
// are written together, in one statement or transaction, instead of one round trip each. While one
// group is being written the next one gathers, so a lone caller waits no longer than before.
export class GroupCommit<T> {
  private waiting: { item: T; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private writing = false;

  /** writeAll writes a group at once; a group that fails is retried one item at a time, so one bad item fails only its own caller. */
  constructor(private readonly writeAll: (items: T[]) => Promise<unknown>) {}

  add(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.waiting.length > 0) {
      const group = this.waiting;
      this.waiting = [];
      try {
        await this.writeAll(group.map((entry) => entry.item));
        for (const entry of group) entry.resolve();
      } catch (error) {
        if (group.length === 1) group[0]!.reject(error);
        else {
          await Promise.all(
            group.map((entry) => this.writeAll([entry.item]).then(entry.resolve, entry.reject)),
          );
        }
      }
    }
    this.writing = false;
  }
}
