// A stand-in for postgres.js's lazy query, for wrappers that must act when it runs (admit it
// through the pool gate, time it in a span): postgres.js runs a query when it is first awaited, and
// drizzle calls `.values()` on it before that, so the choice of result shape is kept until then.
export function deferredQuery(run: (asValues: boolean) => Promise<unknown>) {
  let asValues = false;
  let running: Promise<unknown> | undefined;
  const started = () => (running ??= run(asValues));
  const pending = {
    values() {
      asValues = true;
      return pending;
    },
    then<A = unknown, B = never>(onFulfilled?: ((value: unknown) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null) {
      return started().then(onFulfilled, onRejected);
    },
    catch<B = never>(onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null) {
      return started().catch(onRejected);
    },
    finally(onFinally?: (() => void) | null) {
      return started().finally(onFinally);
    },
  };
  return pending;
}
