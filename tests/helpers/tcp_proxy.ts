/**
 * A TCP proxy in the test process, to take a database "away" from the processes that connect
 * through it and bring it back: `cut()` drops every open connection and stops listening, so new
 * connections are refused (as when the server is down); `restore()` listens on the same port
 * again. The server itself is untouched, so other tests using it go on undisturbed.
 */

export interface TcpProxy extends AsyncDisposable {
  /** The local port to connect to instead of the target's. */
  readonly port: number;
  /** Connections passed through so far. */
  readonly accepted: number;
  /** Drops every open connection and refuses new ones. */
  cut(): Promise<void>;
  /** Accepts connections on the same port again. */
  restore(): void;
}

export function startTcpProxy(target: { hostname: string; port: number }): TcpProxy {
  let listener: Deno.TcpListener | null = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const open = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;

  const track = (task: Promise<void>) => {
    tasks.add(task);
    task.finally(() => tasks.delete(task));
  };

  const close = (conn: Deno.Conn) => {
    open.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  };

  const relay = async (client: Deno.Conn) => {
    let server: Deno.Conn;
    try {
      server = await Deno.connect({ hostname: target.hostname, port: target.port });
    } catch {
      close(client);
      return;
    }
    if (!open.has(client)) {
      // cut() while connecting
      server.close();
      return;
    }
    open.add(server);
    const copy = async (from: Deno.Conn, to: Deno.Conn) => {
      try {
        await from.readable.pipeTo(to.writable, { preventClose: true });
      } catch {
        // the other side or cut() closed it
      }
      close(from);
      close(to);
    };
    await Promise.all([copy(client, server), copy(server, client)]);
  };

  const accept = (l: Deno.TcpListener) =>
    track((async () => {
      try {
        for await (const client of l) {
          accepted++;
          open.add(client);
          track(relay(client));
        }
      } catch {
        // listener closed
      }
    })());
  accept(listener);

  const cut = async () => {
    listener?.close();
    listener = null;
    for (const conn of [...open]) close(conn);
    // Bounded: a relay that does not end within 10 s is a harness fault, said as such.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`tcp proxy: ${tasks.size} relays still open 10 s after cut()`)),
        10_000,
      );
    });
    try {
      await Promise.race([Promise.allSettled([...tasks]), late]);
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    port,
    get accepted() {
      return accepted;
    },
    cut,
    restore: () => {
      if (listener) return;
      listener = Deno.listen({ hostname: "127.0.0.1", port });
      accept(listener);
    },
    [Symbol.asyncDispose]: cut,
  };
}
