'use strict';
/**
 * Peer chat server for chatbench on Node.js + ws, written the idiomatic fast way for that stack.
 *
 * It speaks the same wire protocol as the bundled server (docs/PROTOCOL.md): Basic-auth token
 * endpoint issuing HS256 JWTs that interoperate with the bundled server's, /ws?token= upgrade
 * refused with 401 before the upgrade, SUBSCRIBE / UNSUBSCRIBE / PUBLISH / READ_RECEIPT /
 * USER_STATUS, mention and shutdown NOTIFICATIONs, ERROR for refused input, bounded in-memory
 * history with exact paging, /healthz and /metrics.
 *
 * Fan-out: one JSON.stringify per message, encoded once to a Buffer, then ws.send to each
 * subscriber (no batching: the ws way). A subscriber whose send buffer passes
 * --max-buffered-bytes is closed with 1008 "slow consumer", so one slow reader cannot exhaust memory.
 * Keepalive is the ws heartbeat idiom (ping every --ping-interval s, terminate the silent).
 *
 *   node server.js --host 127.0.0.1 --port 0 [--password bench] [--jwt-secret S] ...
 * prints "chat server listening on http://HOST:PORT (peer node-ws)" once it listens.
 */
const http = require('node:http');
const crypto = require('node:crypto');
const { performance } = require('node:perf_hooks');
const { WebSocketServer, WebSocket } = require('ws');

// The bundled server's defaults (server_under_test/config.py); the Python registry passes them all.
const OPTIONS = {
  host: '127.0.0.1',
  port: 8765,
  password: 'bench',
  'jwt-secret': 'chatbench-shared-secret-change-me-in-production',
  'token-ttl': 3600,
  'history-limit': 10000,
  'page-limit': 20,
  'max-page-limit': 100,
  'max-message-bytes': 65536,
  'max-buffered-bytes': 1024 * 1024,
  'shutdown-timeout': 5,
  'retry-after-ms': 1000,
  'max-subscriptions': 1000,
  'ping-interval': 20,
};

const TEXT = { binary: false };
const MESSAGE_TYPES = new Set(['TEXT', 'FILE', 'IMAGE']);
const STATUSES = new Set(['ONLINE', 'AWAY', 'OFFLINE']);
const MENTION = /@([A-Za-z0-9_.-]{1,64})/g;
const MAX_USER_ID = 64;
const WS_PATHS = new Set(['/ws', '/']);
const MAX_BODY_BYTES = 64 * 1024;
const LIMIT_2_63 = 2n ** 63n;
const READ = ['GET', 'HEAD'];
const ROUTES = new Map([
  ['/healthz', READ], ['/metrics', READ], ['/auth/token', ['GET']], ['/auth/login', ['POST']],
  ['/ws', ['GET']], ['/', ['GET']],
]);
const CORS = {
  'Access-Control-Allow-Headers': 'Authorization, Content-Type',
  'Access-Control-Max-Age': '600',
};
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The protocol's one integer rule: ASCII digits only, 0 <= n < 2^63 (docs/PROTOCOL.md). */
function parseDigits(raw) {
  if (typeof raw !== 'string' || !/^[0-9]{1,19}$/.test(raw) || BigInt(raw) >= LIMIT_2_63) return null;
  return Number(raw);
}

/** A JSON.parse reviver that refuses lone surrogates (they cannot be encoded back to UTF-8). */
function refuseLoneSurrogates(key, value) {
  if (!key.isWellFormed() || (typeof value === 'string' && !value.isWellFormed())) {
    throw new Error('lone surrogate in a string');
  }
  return value;
}

function routeMethods(path) {
  if (path.startsWith('/channels/') && path.endsWith('/messages') && path.length >= '/channels//messages'.length + 1) {
    return READ;
  }
  return ROUTES.get(path) || null;
}
const COUNTERS = [
  'connections_accepted', 'frames_in', 'frames_out', 'messages_in', 'messages_out', 'slow_consumer_disconnects',
  'auth_failures', 'errors', 'http_requests',
];

/** The token from `Authorization: Bearer` or, failing that, the `token` query parameter. */
function bearerToken(req, queryToken) {
  const [scheme, token] = (req.headers.authorization || '').split(' ');
  return scheme && scheme.toLowerCase() === 'bearer' && token ? token : queryToken;
}

function parseArgs(argv) {
  const opts = { ...OPTIONS };
  for (let i = 0; i < argv.length; i += 1) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in opts) || i + 1 >= argv.length) {
      throw new Error(`unknown option or missing value: ${argv[i]}`);
    }
    const value = argv[(i += 1)];
    opts[name] = typeof OPTIONS[name] === 'number' ? Number(value) : value;
    if (Number.isNaN(opts[name])) throw new Error(`--${name} needs a number, got ${value}`);
  }
  return opts;
}

// --- HS256 JWT with node's crypto (same claims as the bundled server: sub, iat, exp) ---------

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function signToken(secret, userId, ttlSeconds) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub: userId, iat: now, exp: now + ttlSeconds }));
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** The claims of a valid, unexpired HS256 token, or null. */
function verifyToken(secret, token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    if (header.alg !== 'HS256') return null;
    const expected = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
    const given = Buffer.from(parts[2], 'base64url');
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return null;
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    if (typeof claims.sub !== 'string' || !claims.sub || claims.sub.length > MAX_USER_ID) return null;
    if (typeof claims.exp !== 'number' || claims.exp <= Date.now() / 1000) return null;
    const { channels } = claims;
    if (channels !== undefined && !(Array.isArray(channels) && channels.every((c) => typeof c === 'string'))) {
      return null;
    }
    return { userId: claims.sub, patterns: channels === undefined ? null : channels.map(globToRegExp) };
  } catch {
    return null;
  }
}

/** fnmatch (the bundled server's channel patterns): * ? [seq] [!seq], case-sensitive. */
function globToRegExp(pattern) {
  let out = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i];
    const close = c === '[' ? pattern.indexOf(']', i + 2) : -1;
    if (c === '*') out += '[\\s\\S]*';
    else if (c === '?') out += '[\\s\\S]';
    else if (close > 0) {
      const body = pattern.slice(i + 1, close).replace(/\\/g, '\\\\');
      if (body[0] === '!') out += `[^${body.slice(1)}]`;
      else out += body[0] === '^' ? `[\\${body}]` : `[${body}]`;
      i = close;
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

/** The bundled server's channel rule: dm:<a>:<b> only for a and b; a `channels` claim restricts. */
function mayUse(identity, channelId) {
  if (channelId.startsWith('dm:') && !channelId.slice(3).split(':').includes(identity.userId)) return false;
  return identity.patterns === null || identity.patterns.some((re) => re.test(channelId));
}

// --- channels: subscribers and a bounded history ring with exact paging --------------------

class Channel {
  constructor(capacity) {
    this.subscribers = new Set();
    this.ring = new Array(capacity);
    this.capacity = capacity;
    this.lastId = 0;
  }

  append(message) {
    this.ring[(message.id - 1) % this.capacity] = message;
    this.lastId = message.id;
  }

  /** One page, oldest first: after=ID pages forward, before=ID (or neither: newest) pages back. */
  page(before, after, limit) {
    const first = Math.max(1, this.lastId - this.capacity + 1);
    let lo;
    let hi;
    let hasMore;
    if (after !== null) {
      lo = Math.max(first, after + 1);
      hi = Math.min(this.lastId, lo + limit - 1);
      hasMore = hi < this.lastId;
    } else {
      hi = before !== null ? Math.min(this.lastId, before - 1) : this.lastId;
      lo = Math.max(first, hi - limit + 1);
      hasMore = lo > first;
    }
    const messages = [];
    for (let id = lo; id <= hi; id += 1) messages.push(this.ring[(id - 1) % this.capacity]);
    return { messages, hasMore: messages.length > 0 && hasMore };
  }
}

class ProtocolError extends Error {
  constructor(code, reason) {
    super(reason);
    this.code = code;
  }
}

function field(msg, name, kinds) {
  if (!(name in msg)) throw new ProtocolError('MISSING_FIELD', `${msg.type} needs '${name}'`);
  const value = msg[name];
  if (!kinds.includes(typeof value)) throw new ProtocolError('BAD_MESSAGE', `'${name}' has the wrong type`);
  return value;
}

function channelOf(msg) {
  const id = String(field(msg, 'channelId', ['string', 'number']));
  if (id.length < 1 || id.length > 128) {
    throw new ProtocolError('BAD_MESSAGE', "'channelId' must be 1 to 128 characters");
  }
  return id;
}

// --- the server --------------------------------------------------------------------------------

class ChatServer {
  constructor(opts) {
    this.opts = opts;
    this.channels = new Map();
    this.users = new Map(); // userId -> Set of sockets
    this.status = new Map(); // userId -> ONLINE | AWAY | OFFLINE
    this.started = performance.now();
    this.metrics = Object.fromEntries(COUNTERS.map((name) => [name, 0]));
    this.http = http.createServer({ keepAliveTimeout: 5000, headersTimeout: 10000, maxHeaderSize: 16384 }, (req, res) => {
      try {
        this.onRequest(req, res);
      } catch (err) { // a malformed URL or escape: the request is refused, the server goes on
        if (!res.headersSent) res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: `bad request: ${err.message}`, status: 400 }));
      }
    });
    this.wss = new WebSocketServer({
      noServer: true, maxPayload: opts['max-message-bytes'], perMessageDeflate: false, clientTracking: true,
    });
    this.http.on('upgrade', (req, socket, head) => {
      try {
        this.onUpgrade(req, socket, head);
      } catch {
        socket.destroy();
      }
    });
  }

  channel(id) {
    let ch = this.channels.get(id);
    if (ch === undefined) {
      ch = new Channel(this.opts['history-limit']);
      this.channels.set(id, ch);
    }
    return ch;
  }

  identity(token) {
    const identity = verifyToken(this.opts['jwt-secret'], token);
    if (identity === null) this.metrics.auth_failures += 1;
    return identity;
  }

  // HTTP ---------------------------------------------------------------------------------------

  onRequest(req, res) {
    const url = new URL(req.url, 'http://localhost');
    const reply = (status, body, headers = {}) => {
      const data = body === null ? '' : JSON.stringify(body);
      res.writeHead(status, {
        'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data), 'Cache-Control': 'no-store',
        'Access-Control-Allow-Origin': '*', ...headers,
      });
      res.end(req.method === 'HEAD' ? undefined : data);
    };
    const fail = (status, error, headers) => reply(status, { error, status }, headers);
    this.metrics.http_requests += 1;
    const path = url.pathname;
    const methods = routeMethods(path);
    if (methods === null) return fail(404, `no route for ${path}`);
    const allow = [...methods, 'OPTIONS'].join(', ');
    if (req.method === 'OPTIONS') { // a CORS preflight: never an auth failure
      const preflight = req.headers.origin && req.headers['access-control-request-method'];
      return reply(204, null, preflight ? { Allow: allow, 'Access-Control-Allow-Methods': allow, ...CORS } : { Allow: allow });
    }
    if (!methods.includes(req.method)) return fail(405, `${req.method} is not allowed here`, { Allow: allow });
    if (path === '/healthz') {
      const uptimeS = Math.round((performance.now() - this.started)) / 1000;
      return reply(200, { status: 'ok', uptimeS, preset: 'peer:node-ws', connections: this.wss.clients.size });
    }
    if (path === '/metrics') {
      const text = this.renderMetrics();
      res.writeHead(200, {
        'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(text),
        'Access-Control-Allow-Origin': '*',
      });
      return res.end(req.method === 'HEAD' ? undefined : text);
    }
    if (path === '/auth/token') return this.issueToken(req, reply, fail);
    if (path === '/auth/login') return this.login(req, reply, fail);
    if (WS_PATHS.has(path)) return fail(426, 'this path upgrades to a WebSocket', { Upgrade: 'websocket' });
    const channelId = decodeURIComponent(path.slice('/channels/'.length, -'/messages'.length));
    return this.history(req, channelId, url.searchParams, reply, fail);
  }

  /** POST /auth/login {"username", "password"}: the same answer as GET /auth/token. */
  login(req, reply, fail) {
    if ((req.headers['content-type'] || '').split(';')[0].trim().toLowerCase() !== 'application/json') {
      return fail(415, 'send the credentials as application/json');
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        fail(413, `request body over ${MAX_BODY_BYTES} bytes`, { Connection: 'close' });
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) return undefined;
      let body;
      try {
        body = JSON.parse(STRICT_UTF8.decode(Buffer.concat(chunks)));
      } catch {
        return fail(400, 'the body is not UTF-8 JSON');
      }
      if (body === null || typeof body.username !== 'string' || typeof body.password !== 'string') {
        return fail(400, "the body must be {'username': string, 'password': string}");
      }
      return this.grant(body.username, Buffer.from(body.password), reply, fail, {});
    });
    return undefined;
  }

  issueToken(req, reply, fail) {
    const [scheme, encoded] = (req.headers.authorization || '').split(' ');
    const decoded = scheme && scheme.toLowerCase() === 'basic' && encoded ? Buffer.from(encoded, 'base64').toString() : '';
    const colon = decoded.indexOf(':');
    const user = colon > 0 ? decoded.slice(0, colon) : '';
    const password = Buffer.from(colon > 0 ? decoded.slice(colon + 1) : '');
    return this.grant(user, password, reply, fail, { 'WWW-Authenticate': 'Basic realm="chat"' });
  }

  grant(user, password, reply, fail, refusalHeaders) {
    const expected = Buffer.from(this.opts.password);
    const valid = password.length === expected.length && crypto.timingSafeEqual(password, expected);
    if (!user || user.length > MAX_USER_ID || user.includes(':') || !valid) {
      this.metrics.auth_failures += 1;
      return fail(401, 'unknown user or wrong password', refusalHeaders);
    }
    const ttl = this.opts['token-ttl'];
    return reply(200, { token: signToken(this.opts['jwt-secret'], user, ttl), userId: user, expiresIn: ttl });
  }

  history(req, channelId, params, reply, fail) {
    const identity = this.identity(bearerToken(req, params.get('token')));
    if (identity === null) {
      return fail(401, 'missing, invalid or expired token', { 'WWW-Authenticate': 'Bearer realm="chat"' });
    }
    if (!channelId || channelId.length > 128) return fail(400, 'channel id must be 1 to 128 characters');
    if (!mayUse(identity, channelId)) return fail(403, `channel '${channelId}' is not open to you`);
    const num = (name) => {
      const values = params.getAll(name);
      if (values.length > 1) throw new Error(`'${name}' is given ${values.length} times`);
      if (values.length === 0 || values[0] === '') return null;
      const value = parseDigits(values[0]);
      if (value === null) throw new Error(`'${name}' must be ASCII digits below 2**63`);
      return value;
    };
    let before;
    let after;
    let limit;
    try {
      [before, after, limit] = [num('before'), num('after'), num('limit')];
    } catch (err) {
      return fail(400, err.message);
    }
    if (before !== null && after !== null) return fail(400, "give 'before' or 'after', not both");
    limit = limit === null ? this.opts['page-limit'] : Math.min(Math.max(limit, 1), this.opts['max-page-limit']);
    const ch = this.channels.get(channelId);
    const page = ch ? ch.page(before, after, limit) : { messages: [], hasMore: false };
    return reply(200, { channelId, ...page });
  }

  /** The bundled server's metric names (docs/PROTOCOL.md, /metrics) for what this peer counts. */
  renderMetrics() {
    let channels = 0;
    for (const ch of this.channels.values()) if (ch.subscribers.size > 0) channels += 1;
    let subscriptions = 0;
    for (const ws of this.wss.clients) subscriptions += ws.channels ? ws.channels.size : 0;
    const gauges = { chat_connections: this.wss.clients.size, chat_channels: channels, chat_subscriptions: subscriptions };
    const lines = Object.entries(gauges).map(([name, value]) => `# TYPE ${name} gauge\n${name} ${value}`);
    for (const [name, value] of Object.entries(this.metrics)) {
      lines.push(`# TYPE chat_${name}_total counter\nchat_${name}_total ${value}`);
    }
    return `${lines.join('\n')}\n`;
  }

  /** The ws heartbeat idiom: ping everyone each interval, drop whoever did not answer the last ping. */
  heartbeat() {
    for (const ws of this.wss.clients) {
      if (!ws.isAlive) {
        ws.terminate();
      } else {
        ws.isAlive = false;
        ws.ping();
      }
    }
  }

  // WebSocket ----------------------------------------------------------------------------------

  onUpgrade(req, socket, head) {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url, 'http://localhost');
    const refuse = (status, error) => {
      const body = JSON.stringify({ error, status });
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\n`
        + `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    };
    if (!WS_PATHS.has(url.pathname)) return refuse(404, `no route for ${url.pathname}`);
    if (this.closing) return refuse(503, 'shutting down');
    const identity = this.identity(bearerToken(req, url.searchParams.get('token')));
    if (identity === null) return refuse(401, 'missing, invalid or expired token');
    return this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, identity));
  }

  onConnection(ws, identity) {
    ws.identity = identity;
    ws.userId = identity.userId;
    ws.channels = new Set();
    this.metrics.connections_accepted += 1;
    ws.isAlive = true;
    ws.on('pong', () => { ws.isAlive = true; });
    let sessions = this.users.get(ws.userId);
    if (sessions === undefined) this.users.set(ws.userId, (sessions = new Set()));
    sessions.add(ws);
    if (sessions.size === 1) this.status.set(ws.userId, 'ONLINE');
    ws.on('message', (data, isBinary) => this.onMessage(ws, data, isBinary));
    ws.on('close', () => this.onClose(ws));
    ws.on('error', () => ws.terminate());
  }

  userIn(userId, ch) {
    for (const session of this.users.get(userId) || []) if (ch.subscribers.has(session)) return true;
    return false;
  }

  onClose(ws) {
    const left = [];
    for (const id of ws.channels) {
      const ch = this.channels.get(id);
      ch.subscribers.delete(ws);
      if (!this.userIn(ws.userId, ch)) left.push(id);
    }
    ws.channels.clear();
    const sessions = this.users.get(ws.userId);
    sessions.delete(ws);
    if (sessions.size > 0) return;
    this.users.delete(ws.userId);
    this.status.delete(ws.userId);
    for (const id of left) this.fanOut(this.channels.get(id).subscribers, this.statusEvent(ws.userId, 'OFFLINE', id));
  }

  send(ws, data) {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > this.opts['max-buffered-bytes']) {
      this.metrics.slow_consumer_disconnects += 1;
      ws.close(1008, 'slow consumer'); // after what is buffered; later sends are skipped (CLOSING)
      return;
    }
    this.metrics.frames_out += 1;
    ws.send(data, TEXT);
  }

  reply(ws, msg) {
    this.send(ws, JSON.stringify(msg));
  }

  /** Encode once, send the same bytes to every target. */
  fanOut(targets, msg) {
    const data = Buffer.from(JSON.stringify(msg));
    for (const ws of targets) this.send(ws, data);
  }

  /** USER_STATUS about userId in one channel (channelId null: the echo to the user's channel-less connections). */
  statusEvent(userId, status, channelId) {
    return { type: 'USER_STATUS', status, timestamp: Date.now(), userId, channelId };
  }

  onMessage(ws, data, isBinary) {
    this.metrics.frames_in += 1;
    try {
      let msg;
      try {
        const text = isBinary ? STRICT_UTF8.decode(data) : data.toString(); // a binary frame: UTF-8 JSON text
        msg = text.includes('\\u') ? JSON.parse(text, refuseLoneSurrogates) : JSON.parse(text);
      } catch (err) {
        throw new ProtocolError('BAD_JSON', `frame is not JSON: ${err.message}`);
      }
      if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
        throw new ProtocolError('BAD_MESSAGE', 'a client frame must be one JSON object');
      }
      if (!('type' in msg)) throw new ProtocolError('MISSING_FIELD', "message needs 'type'");
      this.dispatch(ws, msg);
    } catch (err) {
      const known = err instanceof ProtocolError;
      if (!known) process.stderr.write(`node-ws peer: ${err.stack}\n`);
      this.metrics.errors += 1;
      const [code, reason] = known ? [err.code, err.message] : ['INTERNAL', 'internal error'];
      this.reply(ws, { type: 'ERROR', code, reason, timestamp: Date.now() });
    }
  }

  dispatch(ws, msg) {
    switch (msg.type) {
      case 'PUBLISH': return this.publish(ws, msg);
      case 'SUBSCRIBE': return this.subscribe(ws, channelOf(msg));
      case 'UNSUBSCRIBE': return this.unsubscribe(ws, channelOf(msg));
      case 'READ_RECEIPT': return this.readReceipt(ws, msg);
      case 'USER_STATUS': return this.userStatus(ws, msg);
      default: throw new ProtocolError('UNKNOWN_TYPE', `unknown message type ${JSON.stringify(msg.type)}`);
    }
  }

  subscribedChannel(ws, id) {
    if (!ws.channels.has(id)) {
      if (!mayUse(ws.identity, id)) throw new ProtocolError('FORBIDDEN', `channel '${id}' is not open to you`);
      throw new ProtocolError('NOT_SUBSCRIBED', `subscribe to '${id}' first`);
    }
    return this.channels.get(id);
  }

  subscribe(ws, id) {
    if (!mayUse(ws.identity, id)) throw new ProtocolError('FORBIDDEN', `channel '${id}' is not open to you`);
    if (!ws.channels.has(id) && ws.channels.size >= this.opts['max-subscriptions']) {
      throw new ProtocolError('BAD_MESSAGE', `at most ${this.opts['max-subscriptions']} subscriptions`);
    }
    const ch = this.channel(id);
    const first = !this.userIn(ws.userId, ch);
    ch.subscribers.add(ws);
    ws.channels.add(id);
    const online = new Set();
    for (const sub of ch.subscribers) if (this.status.get(sub.userId) !== 'OFFLINE') online.add(sub.userId);
    this.reply(ws, {
      type: 'SUBSCRIBED', channelId: id, lastMessageId: ch.lastId, online: [...online].sort(), timestamp: Date.now(),
    });
    if (first) this.fanOut(ch.subscribers, this.statusEvent(ws.userId, 'ONLINE', id));
  }

  unsubscribe(ws, id) {
    if (!ws.channels.has(id)) throw new ProtocolError('NOT_SUBSCRIBED', `not subscribed to '${id}'`);
    this.channels.get(id).subscribers.delete(ws);
    ws.channels.delete(id);
    this.reply(ws, { type: 'UNSUBSCRIBED', channelId: id, timestamp: Date.now() });
  }

  publish(ws, msg) {
    const messageType = msg.messageType === undefined ? 'TEXT' : msg.messageType;
    if (!MESSAGE_TYPES.has(messageType)) {
      throw new ProtocolError('BAD_MESSAGE', "'messageType' must be one of FILE, IMAGE, TEXT");
    }
    const clientMsgId = msg.clientMsgId === undefined ? null : msg.clientMsgId;
    if (clientMsgId !== null && typeof clientMsgId !== 'string') {
      throw new ProtocolError('BAD_MESSAGE', "'clientMsgId' must be a string");
    }
    const timestamp = msg.timestamp === undefined ? 0 : msg.timestamp;
    if (typeof timestamp !== 'number') throw new ProtocolError('BAD_MESSAGE', "'timestamp' must be a number");
    const id = channelOf(msg);
    const content = field(msg, 'content', ['string']);
    const ch = this.subscribedChannel(ws, id);
    const now = Date.now();
    const message = {
      id: ch.lastId + 1, channelId: id, senderId: ws.userId, messageType, content,
      timestamp: Math.trunc(timestamp), serverTimestamp: now, clientMsgId,
    };
    ch.append(message);
    this.metrics.messages_in += 1;
    this.metrics.messages_out += ch.subscribers.size;
    this.fanOut(ch.subscribers, { type: 'CHAT_MESSAGE', channelId: id, message, timestamp: now });
    if (content.includes('@')) this.notifyMentions(id, message);
  }

  notifyMentions(channelId, message) {
    const targets = new Set();
    for (const [, mention] of message.content.matchAll(MENTION)) {
      const userId = mention.replace(/[.-]+$/, '');
      if (userId === message.senderId) continue;
      for (const session of this.users.get(userId) || []) targets.add(session);
    }
    if (targets.size === 0) return;
    this.fanOut(targets, {
      type: 'NOTIFICATION', kind: 'mention', timestamp: Date.now(), channelId, messageId: message.id,
      senderId: message.senderId, content: message.content.slice(0, 200),
    });
  }

  readReceipt(ws, msg) {
    const id = channelOf(msg);
    const messageId = field(msg, 'messageId', ['number', 'string']);
    const ch = this.subscribedChannel(ws, id);
    // One integer rule (ASCII digits or an integer, below 2**63), and out as the integer id whatever came in.
    const number = typeof messageId === 'string' ? parseDigits(messageId) : messageId;
    if (number === null || !Number.isInteger(number) || number < 0) {
      throw new ProtocolError('BAD_MESSAGE', "'messageId' must be ASCII digits or an integer below 2**63");
    }
    if (number < 1 || number > ch.lastId) throw new ProtocolError('BAD_MESSAGE', `no message ${number} in '${id}'`);
    this.fanOut(ch.subscribers, {
      type: 'READ_RECEIPT', channelId: id, messageId: number, userId: ws.userId, timestamp: Date.now(),
    });
  }

  /** One USER_STATUS per channel the user is in; the user's connections in no channel get one with channelId null. */
  userStatus(ws, msg) {
    const status = field(msg, 'status', ['string']);
    if (!STATUSES.has(status)) throw new ProtocolError('BAD_MESSAGE', "'status' must be one of AWAY, OFFLINE, ONLINE");
    this.status.set(ws.userId, status);
    const sessions = this.users.get(ws.userId);
    const ids = new Set();
    for (const session of sessions) for (const id of session.channels) ids.add(id);
    for (const id of [...ids].sort()) this.fanOut(this.channels.get(id).subscribers, this.statusEvent(ws.userId, status, id));
    const lone = [...sessions].filter((session) => session.channels.size === 0);
    if (lone.length > 0) this.fanOut(lone, this.statusEvent(ws.userId, status, null));
  }

  // lifecycle ---------------------------------------------------------------------------------

  listen() {
    if (this.opts['ping-interval'] > 0) {
      setInterval(() => this.heartbeat(), this.opts['ping-interval'] * 1000).unref();
    }
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.opts.port, this.opts.host, () => resolve(this.http.address()));
    });
  }

  /** Tell every client, close each with 1012, wait for them up to the timeout, then stop. */
  async shutdown() {
    if (this.closing) return;
    this.closing = true;
    this.http.close();
    this.http.closeIdleConnections();
    const notice = JSON.stringify({
      type: 'NOTIFICATION', kind: 'shutdown', reason: 'server shutting down', retryAfterMs: this.opts['retry-after-ms'], timestamp: Date.now(),
    });
    const closed = [];
    for (const ws of this.wss.clients) {
      closed.push(new Promise((resolve) => ws.once('close', resolve)));
      ws.send(notice, TEXT);
      ws.close(1012, 'server restart');
    }
    const timeout = new Promise((resolve) => setTimeout(resolve, this.opts['shutdown-timeout'] * 1000).unref());
    await Promise.race([Promise.all(closed), timeout]);
    for (const ws of this.wss.clients) ws.terminate();
    this.http.closeAllConnections();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const server = new ChatServer(opts);
  const address = await server.listen();
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  process.stdout.write(`chat server listening on http://${host}:${address.port} (peer node-ws)\n`);
  const stop = () => server.shutdown().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`error: ${err.message}\n`);
  process.exit(2);
});
