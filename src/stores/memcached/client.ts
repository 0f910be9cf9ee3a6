import { connect as netConnect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionOptions } from 'node:tls';
import type * as Memjs from 'memjs';
import type { Client, ClientOptions, ServerOptions } from 'memjs';
import { configError } from '../../core/errors.js';
import { importDriver } from '../kit/driver.js';
import { nodeTlsOptions, secureContext, tlsFromUrl } from '../kit/tls-url.js';
import { MemcachedStore } from './store.js';
import type { MemcachedStoreOptions } from './store.js';

/** Options of `memcachedClient`: memjs's client and server options, and TLS. */
export interface MemcachedClientOptions extends ClientOptions, ServerOptions {
  /**
   * `tls.connect` options for every connection to every server, e.g. `{ ca }` to trust a private
   * CA and `cert` and `key` for a client certificate (mutual TLS). The server certificate must
   * chain to a trusted CA (`rejectUnauthorized` stays true unless you set it) and name the host
   * as written in the server list (Node's `checkServerIdentity`); SNI names that host unless it
   * is an IP address or `servername` is given. Checked here: unusable PEM is ESESS_CONFIG.
   * @default plain TCP
   */
  tls?: ConnectionOptions;
}

/**
 * A memjs Client for the store, over TLS when `options.tls` is given (memjs itself only speaks
 * plain TCP; memcached 1.6 serves TLS with `-Z`). `servers` is memjs's list,
 * `[user:pass@]host[:port],...`. Unlike a plain memjs client, a connection the server closes
 * while requests wait fails them (memjs would leave them waiting for ever). A failed handshake
 * (untrusted or misnamed server certificate, refused client certificate) fails the operation
 * like any connection failure (ESESS_STORE_UNAVAILABLE through the store); nothing ever falls
 * back to plain TCP. The store's `scan()` dumps keys over the same kind of connection.
 *
 * @example
 * const client = await memcachedClient('cache1:11211,cache2:11211', { tls: { ca: readFileSync('ca.pem') } });
 * const store = memcachedStore({ client });
 */
export async function memcachedClient(servers: string, options: MemcachedClientOptions = {}): Promise<Client> {
  const { tls, ...clientOptions } = options ?? {};
  if (tls !== undefined && (typeof tls !== 'object' || tls === null)) throw configError('tls', 'must be tls.connect options such as { ca }');
  return connectingClient(servers, clientOptions, tls === undefined ? null : { ...tls, secureContext: tls.secureContext ?? secureContext(tls, 'tls') });
}

/** A memjs Client over `ConnectingServer`s: TLS with `tls`, else plain TCP. */
async function connectingClient(servers: string, options: ClientOptions & ServerOptions, tls: ConnectionOptions | null): Promise<Client> {
  if (typeof servers !== 'string' || servers.trim() === '') throw configError('servers', 'must list servers as host:port, separated by commas');
  const memjs = await loadMemjs();
  const ConnectingServer = connectingServerClass(memjs.Server);
  // memjs parses the list; its plain servers are read, never connected.
  const parsed = memjs.Client.create(servers, options).servers;
  return new memjs.Client(parsed.map((server) => new ConnectingServer(server.host, server.port, server.username, server.password, options, tls)), options);
}

/**
 * Opens a store over its own memjs client from a URL: `memcached://host:port,host:port`
 * (optionally `user:pass@` before the hosts for SASL, and `?prefix=` to change the key prefix).
 * Keys are spread over the servers by memjs's hashing. `close()` closes the client.
 *
 * TLS: `ssl-mode` (`disabled`, `required`: encrypted but unverified, `verify-ca`: the
 * certificate chains to a trusted CA, `verify-full`: and names the host; the default when any
 * `ssl-*` is given), `ssl-ca` (PEM file of the CAs to trust instead of Node's), `ssl-cert` and
 * `ssl-key` (PEM files of a client certificate), as for MySQL. `options.client.tls` (tls.connect
 * options) replaces them.
 *
 * @example
 * await openMemcachedStore('memcached://cache1:11211,cache2:11211?ssl-ca=/etc/ssl/cache-ca.pem');
 */
export async function openMemcachedStore(url: string, options: Omit<MemcachedStoreOptions, 'client'> & { client?: ClientOptions & ServerOptions & { tls?: ConnectionOptions } } = {}): Promise<MemcachedStore> {
  const match = /^memcached:\/\/([^/?#]+)\/?(?:\?([^#]*))?$/i.exec(url);
  if (!match?.[1]) throw configError('store', 'must be a memcached://host:port[,host:port...] URL');
  const servers = match[1].split(',');
  for (const server of servers) {
    if (!/^(?:[^@:\s]+:[^@\s]*@)?[^@:,\s]+(?::\d{1,5})?$/.test(server)) throw configError('store', 'must list servers as host:port, separated by commas');
  }
  const query = new URLSearchParams(match[2] ?? '');
  const prefix = query.get('prefix') ?? options.prefix;
  const fromUrl = await tlsFromUrl(query);
  const { tls: given, ...clientOptions } = options.client ?? {};
  const tls = given ?? (fromUrl && nodeTlsOptions(fromUrl));
  // Failures reach the caller as typed errors, so memjs's own console logging is turned off.
  const settings = { timeout: 1, conntimeout: 2, keepAlive: true, logger: { log: () => undefined }, ...clientOptions };
  const client = await connectingClient(servers.join(','), settings, tls ? { ...tls, secureContext: tls.secureContext ?? secureContext(tls, 'client.tls') } : null);
  const { client: _ignored, ...rest } = options;
  try {
    return new MemcachedStore({ ...rest, client, ...(prefix === null || prefix === undefined ? {} : { prefix }) }, () => client.close());
  } catch (error) {
    client.close();
    throw error;
  }
}

async function loadMemjs(): Promise<typeof Memjs> {
  const memjs: typeof Memjs = await importDriver(() => import('memjs'), 'Memcached', 'memjs');
  return memjs.Client ? memjs : (memjs as unknown as { default: typeof Memjs }).default;
}

/** The memjs 1.3 Server state that `sock` below manages (its types mark it read-only or leave it out). */
interface ServerState {
  _socket?: Socket;
  connected: boolean;
  timeoutSet: boolean;
  connectCallbacks: ((socket: Socket) => void)[];
  options: { conntimeout: number; keepAlive: boolean; keepAliveDelay: number };
}

/**
 * A memjs Server that opens its connections itself: TLS with `tls`, plain TCP without. The class
 * extends the memjs that was loaded, so it is made at run time.
 */
function connectingServerClass(Server: typeof Memjs.Server) {
  return class ConnectingServer extends Server {
    readonly #tls: ConnectionOptions | null;

    constructor(host: string, port: number, username: string | undefined, password: string | undefined, options: ServerOptions, tls: ConnectionOptions | null) {
      super(host, port, username, password, options);
      this.#tls = tls;
    }

    openSocket(): Socket {
      if (this.#tls === null) return netConnect({ host: this.host, port: this.port });
      const sni = this.#tls.servername === undefined && isIP(this.host) === 0 ? { servername: this.host } : {};
      return tlsConnect({ ...this.#tls, ...sni, host: this.host, port: this.port });
    }

    /**
     * memjs has no hook for how it connects (no TLS): its `sock` calls `net.connect` itself. A new connection is made here
     * as memjs 1.3 makes it (server.js, `sock`, first case) but with `openSocket`; an existing one
     * goes to memjs. Unlike memjs, a connection the server closes without an error fails the
     * requests waiting on it (memjs would leave them waiting for ever).
     */
    override sock(sasl: boolean, go: (socket: Socket) => void): void {
      const state = this as unknown as ServerState;
      if (state._socket) return super.sock(sasl, go);
      const socket = this.openSocket();
      state.connected = false;
      state._socket = socket;
      socket.once(this.#tls === null ? 'connect' : 'secureConnect', () => {
        this.once('authenticated', () => {
          if (state._socket !== socket) return;
          state.connected = true;
          socket.setTimeout(0);
          state.timeoutSet = false;
          go(socket);
          for (const callback of state.connectCallbacks) callback(socket);
          state.connectCallbacks = [];
        });
        socket.on('data', (data: Buffer) => this.responseHandler(data));
        if (this.username && this.password) this.listSasl();
        else this.emit('authenticated');
      });
      socket.on('error', (error) => this.error(error));
      socket.on('close', () => {
        if (state._socket !== socket) return;
        state.connected = false;
        state.timeoutSet = false;
        delete state._socket;
        this.error(new Error('memcached closed the connection'));
      });
      state.timeoutSet = true;
      socket.setTimeout(state.options.conntimeout * 1000, () => {
        state.timeoutSet = false;
        if (!state.connected) this.error(new Error('socket timed out connecting to server.'));
      });
      socket.setKeepAlive(state.options.keepAlive, state.options.keepAliveDelay * 1000);
    }
  };
}
