/**
 * What postgres.js (its Cloudflare build, vendored in ./src) takes from Node, made of Deno's own
 * APIs, so that opening a PostgreSQL store does not load Deno's Node compatibility modules
 * node:net, node:tls, node:crypto, node:stream, node:os and node:fs (together ~25 ms of CPU
 * before the first query of every CLI call; see docs/architecture.md, "PostgreSQL driver").
 *
 * - `net.Socket`: a plain TCP or Unix-socket connection over Deno.connect. A connection that asks
 *   for TLS is handed to the real node:net / node:tls, loaded only then, so TLS behaves exactly
 *   as the npm build does (verification modes, `rejectUnauthorized`, certificates). So is every
 *   TCP connection after {@link useNodeSockets}(true): Deno.Conn#setKeepAlive cannot set the idle
 *   time before the first probe, which long-running processes want short (workers, dashboard).
 * - `crypto`: SCRAM-SHA-256 on Web Crypto; MD5 (old password auth) loads node:crypto on use.
 * - `Stream`: COPY and large objects are not used by queuectl; using them fails clearly.
 * - `Buffer` and `EventEmitter`: the parts postgres.js uses, on Uint8Array and a listener map
 *   (node:buffer alone loads Deno's Node compatibility layer: ~5-8 ms of every CLI call).
 */

const Crypto = globalThis.crypto;
const utf8 = new TextDecoder();

/** Node's Buffer as far as postgres.js uses it: a Uint8Array with a few methods. */
export class Buffer extends Uint8Array {
  static alloc(size, fill) {
    const b = new Buffer(size);
    if (fill !== undefined) b.fill(fill);
    return b;
  }
  static allocUnsafe(size) {
    return new Buffer(size);
  }
  static byteLength(x) {
    return typeof x === "string" ? textEncoder.encode(x).length : x.byteLength;
  }
  static isBuffer(x) {
    return x instanceof Uint8Array;
  }
  /** A copy of a string (utf8, base64, hex), array or view; a view of an ArrayBuffer. */
  static from(x, encodingOrOffset, length) {
    if (typeof x === "string") {
      if (encodingOrOffset === "base64") {
        const bin = atob(x);
        const b = new Buffer(bin.length);
        for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
        return b;
      }
      if (encodingOrOffset === "hex") {
        const b = new Buffer(x.length >> 1);
        for (let i = 0; i < b.length; i++) b[i] = parseInt(x.substr(i * 2, 2), 16);
        return b;
      }
      const bytes = textEncoder.encode(x);
      return new Buffer(bytes.buffer, bytes.byteOffset, bytes.length);
    }
    if (x instanceof ArrayBuffer) return new Buffer(x, encodingOrOffset ?? 0, length);
    const b = new Buffer(x.length);
    b.set(x);
    return b;
  }
  static concat(list, total) {
    const length = total ?? list.reduce((n, x) => n + x.length, 0);
    const b = new Buffer(length);
    let at = 0;
    for (const x of list) {
      if (at >= length) break;
      const part = at + x.length > length ? x.subarray(0, length - at) : x;
      b.set(part, at);
      at += part.length;
    }
    return b;
  }
  #view() {
    return new DataView(this.buffer, this.byteOffset, this.byteLength);
  }
  /** Like Node's: a view of the same memory, not a copy. */
  slice(start, end) {
    return this.subarray(start, end);
  }
  toString(encoding = "utf8", start = 0, end = this.length) {
    const part = this.subarray(start, end);
    if (encoding === "utf8" || encoding === "utf-8") return utf8.decode(part);
    if (encoding === "base64") {
      let bin = "";
      for (let i = 0; i < part.length; i++) bin += String.fromCharCode(part[i]);
      return btoa(bin);
    }
    if (encoding === "hex") {
      let hex = "";
      for (let i = 0; i < part.length; i++) hex += part[i].toString(16).padStart(2, "0");
      return hex;
    }
    throw new Error(`Buffer#toString: encoding ${encoding} is not supported here`);
  }
  /** Writes a string as UTF-8 at `offset` (at most `length` bytes); returns the bytes written. */
  write(string, offset = 0, length = this.length - offset) {
    const room = this.subarray(offset, offset + Math.min(length, this.length - offset));
    return textEncoder.encodeInto(string, room).written;
  }
  copy(target, targetStart = 0, sourceStart = 0, sourceEnd = this.length) {
    const part = this.subarray(sourceStart, sourceEnd);
    const n = Math.min(part.length, target.length - targetStart);
    target.set(n < part.length ? part.subarray(0, n) : part, targetStart);
    return n;
  }
  readUInt16BE(at = 0) {
    return this.#view().getUint16(at);
  }
  readUInt32BE(at = 0) {
    return this.#view().getUint32(at);
  }
  readInt32BE(at = 0) {
    return this.#view().getInt32(at);
  }
  readBigInt64BE(at = 0) {
    return this.#view().getBigInt64(at);
  }
  writeUInt16BE(x, at = 0) {
    this.#view().setUint16(at, x);
    return at + 2;
  }
  writeUInt32BE(x, at = 0) {
    this.#view().setUint32(at, x);
    return at + 4;
  }
  writeBigInt64BE(x, at = 0) {
    this.#view().setBigInt64(at, x);
    return at + 8;
  }
}

/** Node's EventEmitter as far as postgres.js and the socket below use it. */
export class EventEmitter {
  #listeners = new Map();
  on(event, fn) {
    const list = this.#listeners.get(event);
    if (list) list.push(fn);
    else this.#listeners.set(event, [fn]);
    return this;
  }
  once(event, fn) {
    const wrapper = (...args) => {
      this.removeListener(event, wrapper);
      fn.apply(this, args);
    };
    wrapper.listener = fn;
    return this.on(event, wrapper);
  }
  removeListener(event, fn) {
    const list = this.#listeners.get(event);
    if (!list) return this;
    const i = list.findIndex((l) => l === fn || l.listener === fn);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#listeners.delete(event);
    return this;
  }
  off(event, fn) {
    return this.removeListener(event, fn);
  }
  removeAllListeners(event) {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
    return this;
  }
  listenerCount(event) {
    return this.#listeners.get(event)?.length ?? 0;
  }
  emit(event, ...args) {
    const list = this.#listeners.get(event);
    if (!list || list.length === 0) {
      if (event === "error") throw args[0];
      return false;
    }
    for (const fn of [...list]) fn.apply(this, args);
    return true;
  }
}
const textEncoder = new TextEncoder();

/** Bytes queued for writing past which `write` returns false (and 'drain' follows). */
const HIGH_WATER = 64 * 1024;
/** Size of each read buffer. */
const READ_SIZE = 64 * 1024;

const v4Seg = "(?:[0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])";
const v4Str = `(${v4Seg}[.]){3}${v4Seg}`;
const IPv4Reg = new RegExp(`^${v4Str}$`);
const v6Seg = "(?:[0-9a-fA-F]{1,4})";
const IPv6Reg = new RegExp(
  "^(" +
    `(?:${v6Seg}:){7}(?:${v6Seg}|:)|` +
    `(?:${v6Seg}:){6}(?:${v4Str}|:${v6Seg}|:)|` +
    `(?:${v6Seg}:){5}(?::${v4Str}|(:${v6Seg}){1,2}|:)|` +
    `(?:${v6Seg}:){4}(?:(:${v6Seg}){0,1}:${v4Str}|(:${v6Seg}){1,3}|:)|` +
    `(?:${v6Seg}:){3}(?:(:${v6Seg}){0,2}:${v4Str}|(:${v6Seg}){1,4}|:)|` +
    `(?:${v6Seg}:){2}(?:(:${v6Seg}){0,3}:${v4Str}|(:${v6Seg}){1,5}|:)|` +
    `(?:${v6Seg}:){1}(?:(:${v6Seg}){0,4}:${v4Str}|(:${v6Seg}){1,6}|:)|` +
    `(?::((?::${v6Seg}){0,5}:${v4Str}|(?::${v6Seg}){1,7}|:))` +
    ")(%[0-9a-zA-Z-.:]{1,})?$",
);

/** node:crypto, loaded the first time MD5 is needed. */
let nodeCrypto;
async function md5Hex(x) {
  nodeCrypto ??= await import("node:crypto");
  return nodeCrypto.createHash("md5").update(x).digest("hex");
}

const toBytes = (x) => x instanceof Uint8Array ? x : textEncoder.encode(x);

export const crypto = {
  randomBytes: (l) => Crypto.getRandomValues(Buffer.alloc(l)),
  pbkdf2Sync: async (password, salt, iterations, keylen) =>
    Buffer.from(
      await Crypto.subtle.deriveBits(
        { name: "PBKDF2", hash: "SHA-256", salt, iterations },
        await Crypto.subtle.importKey("raw", textEncoder.encode(password), "PBKDF2", false, [
          "deriveBits",
        ]),
        keylen * 8,
      ),
    ),
  createHash: (type) => ({
    update: (x) => ({
      digest: async (encoding) => {
        if (type === "md5") {
          if (encoding !== "hex") throw new Error("md5 digest: only hex is supported here");
          return await md5Hex(x);
        }
        if (type !== "sha256") throw new Error(`createHash: ${type} is not supported here`);
        const digest = Buffer.from(await Crypto.subtle.digest("SHA-256", toBytes(x)));
        return encoding === "hex" ? digest.toString("hex") : digest;
      },
    }),
  }),
  createHmac: (type, key) => ({
    update: (x) => ({
      digest: async () => {
        if (type !== "sha256") throw new Error(`createHmac: ${type} is not supported here`);
        const k = await Crypto.subtle.importKey(
          "raw",
          key,
          { name: "HMAC", hash: "SHA-256" },
          false,
          ["sign"],
        );
        return Buffer.from(await Crypto.subtle.sign("HMAC", k, toBytes(x)));
      },
    }),
  }),
};

export const performance = globalThis.performance;

/** The environment as Node's process.env shows it (postgres.js reads PGHOST, PGUSER, ...). */
export const process = {
  env: new Proxy({}, {
    get: (_, name) => typeof name === "string" ? Deno.env.get(name) : undefined,
    has: (_, name) => typeof name === "string" && Deno.env.get(name) !== undefined,
  }),
};

export const os = {
  /** The user name of this process's uid (the default database user), from /etc/passwd. */
  userInfo() {
    const uid = Deno.uid();
    const passwd = Deno.readTextFileSync("/etc/passwd");
    for (const line of passwd.split("\n")) {
      const [name, , id] = line.split(":");
      if (id !== undefined && Number(id) === uid) return { username: name };
    }
    throw new Error(`no user name for uid ${uid}`);
  },
};

export const fs = {
  readFile(path, _encoding, callback) {
    Deno.readTextFile(path).then((text) => callback(null, text), (err) => callback(err));
  },
};

const unsupported = () => {
  throw new Error("COPY and large objects are not supported by queuectl's PostgreSQL driver build");
};
export const Stream = { Readable: unsupported, Writable: unsupported, Duplex: unsupported };

/**
 * setImmediate / clearImmediate: postgres.js batches the writes of the queries made in one turn
 * with them; a microtask after the current turn (as in its Cloudflare build).
 */
let ids = 1;
const immediates = new Set();
export function setImmediate(fn) {
  const id = ids++;
  immediates.add(id);
  queueMicrotask(() => {
    if (immediates.delete(id)) fn();
  });
  return id;
}
export function clearImmediate(id) {
  immediates.delete(id);
}

/** node:net and node:tls, loaded only for a connection that asks for TLS. */
let nodeNet;
let nodeTls;
/** Whether TCP connections made from now on go through node:net (see the module comment). */
let nodeSockets = false;
export function useNodeSockets(on) {
  nodeSockets = on;
}

export const net = {
  isIP: (x) => IPv4Reg.test(x) ? 4 : IPv6Reg.test(x) ? 6 : 0,
  Socket: DenoSocket,
};

export const tls = {
  /** Upgrades a connection to TLS: only connections made through node:net get here. */
  connect(options) {
    const inner = options.socket?.inner;
    if (!inner || !nodeTls) {
      throw new Error("TLS over a Unix socket is not supported");
    }
    return nodeTls.connect({ ...options, socket: inner });
  },
};

/** Node's error codes for Deno's socket errors that carry none (the store maps codes: errors.ts). */
const CODES = {
  ConnectionRefused: "ECONNREFUSED",
  ConnectionReset: "ECONNRESET",
  ConnectionAborted: "ECONNABORTED",
  BrokenPipe: "EPIPE",
  TimedOut: "ETIMEDOUT",
  NotConnected: "ENOTCONN",
  AddrNotAvailable: "EADDRNOTAVAIL",
};
function withCode(err) {
  if (!(err instanceof Error) || typeof err.code === "string") return err;
  const code = CODES[err.name] ??
    (/temporary failure in name resolution/i.test(err.message)
      ? "EAI_AGAIN"
      : /failed to lookup address|name or service not known|no address associated/i.test(
          err.message,
        )
      ? "ENOTFOUND"
      : /network is unreachable/i.test(err.message)
      ? "ENETUNREACH"
      : /no route to host/i.test(err.message)
      ? "EHOSTUNREACH"
      : undefined);
  if (code !== undefined) {
    try {
      err.code = code;
    } catch {
      // a frozen error: keep it as it is
    }
  }
  return err;
}

/**
 * The part of Node's net.Socket that postgres.js uses: connect(port, host) / connect(path),
 * write(data, cb) (false past {@link HIGH_WATER}, then 'drain'), end(data), destroy(),
 * setKeepAlive, pause/resume, readyState, and the events connect, data, drain, error, close.
 */
function DenoSocket() {
  const socket = Object.assign(new EventEmitter(), {
    readyState: "closed",
    /** The Deno connection, once connected. */
    conn: null,
    /** A node:net socket, for a connection that asks for TLS. */
    inner: null,
    connect,
    write,
    end,
    destroy,
    setKeepAlive,
    pause() {},
    resume() {},
  });
  let queued = 0;
  let needDrain = false;
  let writing = Promise.resolve();
  let closed = false;
  let keepAlive = false;
  /** Aborts a connect in progress when the socket is destroyed (postgres.js's connect_timeout). */
  const aborter = new AbortController();

  return socket;

  async function connect(portOrPath, host) {
    socket.readyState = "opening";
    if ((socket.ssl || nodeSockets) && typeof portOrPath === "number") {
      return connectNode(portOrPath, host);
    }
    try {
      const conn = typeof portOrPath === "string"
        ? await Deno.connect({ transport: "unix", path: portOrPath })
        : await Deno.connect({ hostname: host, port: portOrPath, signal: aborter.signal });
      if (closed) {
        conn.close();
        return;
      }
      socket.conn = conn;
      if (conn.setNoDelay) conn.setNoDelay(true);
      if (keepAlive && conn.setKeepAlive) conn.setKeepAlive(true);
      socket.readyState = "open";
      read(conn);
      socket.emit("connect");
    } catch (err) {
      fail(err);
    }
  }

  async function connectNode(port, host) {
    try {
      [nodeNet, nodeTls] = await Promise.all([import("node:net"), import("node:tls")]);
    } catch (err) {
      return fail(err);
    }
    if (closed) return;
    const inner = socket.inner = new nodeNet.Socket();
    for (const event of ["connect", "data", "drain", "error", "close"]) {
      inner.on(event, (...args) => {
        if (event === "connect") socket.readyState = "open";
        if (event === "close") {
          socket.readyState = "closed";
          closed = true;
        }
        socket.emit(event, ...args);
      });
    }
    inner.connect(port, host);
  }

  async function read(conn) {
    try {
      for (;;) {
        const buffer = new Uint8Array(READ_SIZE);
        const n = await conn.read(buffer);
        if (n === null) break;
        socket.emit("data", Buffer.from(buffer.buffer, 0, n));
      }
      close(false);
    } catch (err) {
      if (!closed) fail(err);
    }
  }

  function write(data, cb) {
    if (socket.inner) return socket.inner.write(data, cb);
    const conn = socket.conn;
    if (!conn || closed) {
      const err = new Error("write after the connection closed");
      if (cb) queueMicrotask(() => cb(err));
      return false;
    }
    queued += data.length;
    writing = writing.then(async () => {
      if (closed) return;
      try {
        let done = 0;
        while (done < data.length) done += await conn.write(data.subarray(done));
        queued -= data.length;
        cb?.();
        if (needDrain && queued <= 0) {
          needDrain = false;
          socket.emit("drain");
        }
      } catch (err) {
        cb?.(err);
        if (!closed) fail(err);
      }
    });
    if (queued > HIGH_WATER) needDrain = true;
    return !needDrain;
  }

  function end(data) {
    if (socket.inner) return socket.inner.end(data);
    if (data && socket.conn && !closed) write(data);
    writing = writing.then(() => close(false));
  }

  function destroy() {
    if (socket.inner) return socket.inner.destroy();
    close(false);
  }

  function setKeepAlive(enable, delay) {
    if (socket.inner) return socket.inner.setKeepAlive(enable, delay);
    keepAlive = enable;
    if (socket.conn?.setKeepAlive) socket.conn.setKeepAlive(enable);
  }

  function fail(err) {
    if (closed) return;
    socket.emit("error", withCode(err));
    close(true);
  }

  function close(hadError) {
    if (closed) return;
    closed = true;
    socket.readyState = "closed";
    aborter.abort();
    try {
      socket.conn?.close();
    } catch {
      // already closed by the other side
    }
    socket.emit("close", hadError);
  }
}
