// Drives the seed client for tests/web/test_seed_client.py and exposes what it saw as window.__results.
// Nothing here changes how the seed code handles a frame: frames are observed with addEventListener
// beside the seed's onmessage, and only handed to the seed's batcher (queueMessage) as the seed would.
import * as seed from './seed_client.js';

const params = new URLSearchParams(location.search);
const apiBaseUrl = params.get('api');
const channels = params.get('channels').split(',');
seed.configure({ wsBaseUrl: params.get('ws'), apiBaseUrl, channels, current: channels[0] });

const frames = { objects: 0, arrays: 0, messagesInArrays: 0, types: {}, subscribed: [], errors: [] };
const login = {};
const history = { loads: 0, errors: [] };

seed.socketObservers.push((socket) => {
  socket.addEventListener('message', (event) => {
    const data = JSON.parse(event.data);
    if (Array.isArray(data)) { // a batched frame: the seed's switch sees type undefined and drops it
      frames.arrays += 1;
      frames.messagesInArrays += data.length;
      return;
    }
    frames.objects += 1;
    frames.types[data.type] = (frames.types[data.type] || 0) + 1;
    if (data.type === 'SUBSCRIBED') frames.subscribed.push(data.channelId);
    if (data.type === 'ERROR') frames.errors.push(data);
    if (data.type === 'CHAT_MESSAGE') seed.queueMessage(data.message);
  });
});

const describe = (error) => String(error && error.message ? error.message : error);

async function tryLogin(method, request) {
  try {
    const response = await fetch(`${apiBaseUrl}${request.path}`, request.init);
    const body = await response.json();
    login[method] = { ok: response.ok, status: response.status, userId: body.userId, expiresIn: body.expiresIn };
    return response.ok ? body.token : null;
  } catch (error) {
    login[method] = { ok: false, error: describe(error) };
    return null;
  }
}

window.harness = {
  /** Both of DESIGN.md's logins, cross-origin; the token of the first that works, else null. */
  async login(username, password) {
    const post = await tryLogin('post', {
      path: '/auth/login',
      init: { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }) },
    });
    const basic = await tryLogin('basic', {
      path: '/auth/token',
      init: { headers: { Authorization: `Basic ${btoa(`${username}:${password}`)}` } },
    });
    return post || basic;
  },
  start(token) {
    seed.setApiToken(token);
    seed.initializeWebSocketConnection(token);
  },
  publish(channelId, content, type) { seed.publishMessage(seed.currentSocket(), channelId, content, type); },
  readReceipt(channelId, messageId) { seed.sendReadReceipt(seed.currentSocket(), channelId, String(messageId)); },
  status(status) { seed.broadcastUserStatusChange(seed.currentSocket(), status); },
  /** The scroll observer's part: load previous pages until one adds nothing. */
  async scrollBack(channelId) {
    for (let page = 0; page < 50; page += 1) {
      const before = (seed.chatMessagesAtom[channelId] || []).length;
      try {
        await seed.useChatMessages(channelId).loadPreviousMessages();
      } catch (error) {
        history.errors.push(describe(error));
        return;
      }
      history.loads += 1;
      if ((seed.chatMessagesAtom[channelId] || []).length === before) return;
    }
  },
};

Object.defineProperty(window, '__results', {
  get: () => JSON.parse(JSON.stringify({
    login,
    frames,
    history,
    connection: seed.connectionLog,
    chatMessages: seed.chatMessagesAtom,
    unreadCount: seed.unreadCountAtom,
    batchedMessages: seed.batchedMessagesAtom,
    userStatus: seed.userStatusAtom,
    readReceipts: seed.readReceiptsAtom,
    notifications: seed.notificationsAtom,
    socketOpen: seed.currentSocket() !== null && seed.currentSocket().readyState === WebSocket.OPEN,
  })),
});
window.harnessReady = true;
