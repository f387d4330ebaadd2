/**
 * Server-sent events: one timer reads the stats once per interval and pushes them to every open
 * page (`event: stats`). The timer runs only while at least one page listens.
 */
const encoder = new TextEncoder();

/**
 * Messages a page may leave unread (queued here once the socket's buffers are full) before its
 * stream is closed: a page that stopped reading (a suspended laptop, a stalled client) would
 * otherwise keep one message per interval in the server's memory for as long as its connection
 * lives. A browser that resumes reconnects (`retry`) and gets the current stats at once.
 */
export const MAX_UNSENT_MESSAGES = 30;

type Client = ReadableStreamDefaultController<Uint8Array>;

export class StatsHub {
  readonly #clients = new Set<Client>();
  readonly #read: () => Promise<unknown>;
  readonly #intervalMs: number;
  readonly #log: (line: string) => void;
  #timer: ReturnType<typeof setInterval> | undefined;
  #busy = false;
  #closed = false;

  constructor(read: () => Promise<unknown>, intervalMs: number, log: (line: string) => void) {
    this.#read = read;
    this.#intervalMs = intervalMs;
    this.#log = log;
  }

  get size(): number {
    return this.#clients.size;
  }

  /** A new event stream: the current stats at once, then one message per interval. */
  subscribe(): ReadableStream<Uint8Array> {
    let self: Client;
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        self = controller;
        if (this.#closed) {
          controller.close();
          return;
        }
        this.#clients.add(controller);
        controller.enqueue(encoder.encode(`retry: 2000\n\n`));
        this.#ensureTimer();
        void this.#message().then((m) => this.#send(controller, m));
      },
      cancel: () => this.#drop(self),
    });
  }

  #ensureTimer(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.#tick(), this.#intervalMs);
  }

  async #tick(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const message = await this.#message();
      for (const c of this.#clients) this.#send(c, message);
    } finally {
      this.#busy = false;
    }
  }

  async #message(): Promise<string> {
    try {
      return `event: stats\ndata: ${JSON.stringify(await this.#read())}\n\n`;
    } catch (err) {
      this.#log(`dashboard: cannot read stats: ${err instanceof Error ? err.message : err}`);
      const error = "cannot read the queue (see the dashboard's log)";
      return `event: failure\ndata: ${JSON.stringify({ error })}\n\n`;
    }
  }

  #send(client: Client, message: string): void {
    if (!this.#clients.has(client)) return;
    try {
      // desiredSize: 1 (the default high-water mark) less the messages queued and not yet sent.
      if ((client.desiredSize ?? 0) < 1 - MAX_UNSENT_MESSAGES) {
        this.#drop(client);
        client.close();
        return;
      }
      client.enqueue(encoder.encode(message));
    } catch {
      this.#drop(client);
    }
  }

  #drop(client: Client): void {
    this.#clients.delete(client);
    if (this.#clients.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Ends every stream and stops the timer. */
  close(): void {
    this.#closed = true;
    for (const c of [...this.#clients]) {
      this.#drop(c);
      try {
        c.close();
      } catch {
        // already closed by the client
      }
    }
  }
}
