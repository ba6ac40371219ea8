// The seed's client (shared/seed/000_93407423672755e7.txt), transcribed from TypeScript to plain JavaScript
// with its logic unchanged. Jotai atoms are plain objects and setAtom applies the recipe to them; React's
// hook is a plain function. Below the seed's code, marked GLUE, are the few names the seed uses but does
// not define (WS_BASE_URL, setAtom, getCurrentChannelId, subscribeToUserChannels, the three handlers,
// fetchMessages), written the obvious way.

// --- GLUE: configuration and state ------------------------------------------------------------------
let WS_BASE_URL = '';
let API_BASE_URL = '';
let authTokenForApi = '';
let userChannels = [];
let currentChannelId = null;
let activeSocket = null;

export const configure = ({ wsBaseUrl, apiBaseUrl, channels, current }) => {
  WS_BASE_URL = wsBaseUrl;
  API_BASE_URL = apiBaseUrl;
  userChannels = channels;
  currentChannelId = current;
};
export const setApiToken = (token) => { authTokenForApi = token; };
export const currentSocket = () => activeSocket;

const atomWithImmer = (initial) => initial;
const setAtom = (atom, recipe) => recipe(atom);
const getCurrentChannelId = () => currentChannelId;

export const userStatusAtom = {}; // userId -> channelId -> status (the last one seen)
export const readReceiptsAtom = []; // every READ_RECEIPT event
export const notificationsAtom = []; // every NOTIFICATION event
export const connectionLog = { opens: 0, closes: [], reconnectAttempts: [] };
export const socketObservers = []; // called with every socket that opens (the test records its frames)

// --- seed: 연결 수립 프로세스 ------------------------------------------------------------------------
export const initializeWebSocketConnection = (authToken) => {
  const socket = new WebSocket(`${WS_BASE_URL}?token=${authToken}`);

  socket.onopen = () => {
    console.log('WebSocket 연결 성공');
    // 채널 구독 및 초기화 메시지 전송
    subscribeToUserChannels(socket);
  };

  socket.onclose = (event) => {
    console.log(`WebSocket 연결 종료: ${event.code} - ${event.reason}`);
    connectionLog.closes.push(event.code); // GLUE: recorded for the test
    // 재연결 로직
    handleReconnection(authToken);
  };

  return socket;
};

// --- seed: 재연결 메커니즘 ---------------------------------------------------------------------------
export const handleReconnection = (authToken, attempt = 1) => {
  const maxAttempts = 10;
  const baseDelay = 1000; // 1초

  if (attempt > maxAttempts) {
    console.error('최대 재연결 시도 횟수 초과');
    return;
  }

  // 지수 백오프 - 재시도 간격을 점진적으로 증가
  const delay = Math.min(baseDelay * Math.pow(1.5, attempt - 1), 30000); // 최대 30초
  connectionLog.reconnectAttempts.push({ attempt, delay }); // GLUE: recorded for the test

  setTimeout(() => {
    console.log(`재연결 시도 ${attempt}/${maxAttempts}`);
    const newSocket = initializeWebSocketConnection(authToken);

    newSocket.onerror = () => {
      handleReconnection(authToken, attempt + 1);
    };
  }, delay);
};

// --- seed: 채널 구독 ---------------------------------------------------------------------------------
export const subscribeToChannel = (socket, channelId) => {
  if (socket.readyState === WebSocket.OPEN) {
    const subscribeMessage = {
      type: 'SUBSCRIBE',
      channelId,
      timestamp: Date.now(),
    };

    socket.send(JSON.stringify(subscribeMessage));
  }
};

// --- seed: 메시지 발행 -------------------------------------------------------------------------------
export const publishMessage = (socket, channelId, content, type = 'TEXT') => {
  if (socket.readyState === WebSocket.OPEN) {
    const message = {
      type: 'PUBLISH',
      channelId,
      messageType: type,
      content,
      timestamp: Date.now(),
    };

    socket.send(JSON.stringify(message));
  }
};

// --- seed: 메시지 수신 처리 (the seed assigns this body to socket.onmessage) ---------------------------
export const handleWebSocketMessage = (event) => {
  try {
    const message = JSON.parse(event.data);

    switch (message.type) {
      case 'CHAT_MESSAGE':
        handleChatMessage(message);
        break;
      case 'USER_STATUS':
        handleUserStatusUpdate(message);
        break;
      case 'READ_RECEIPT':
        handleReadReceipt(message);
        break;
      case 'NOTIFICATION':
        handleNotification(message);
        break;
      default:
        console.log('알 수 없는 메시지 타입:', message.type);
    }
  } catch (error) {
    console.error('메시지 처리 중 오류:', error);
  }
};

// --- seed: Jotai를 활용한 상태 관리 ------------------------------------------------------------------
export const chatMessagesAtom = atomWithImmer({});
export const unreadCountAtom = atomWithImmer({});

export const handleChatMessage = (message) => {
  const { channelId, message: messageData } = message;

  setAtom(chatMessagesAtom, (draft) => {
    const messages = draft[channelId] || [];
    draft[channelId] = [...messages, messageData];
  });

  if (getCurrentChannelId() !== channelId) {
    setAtom(unreadCountAtom, (draft) => {
      draft[channelId] = (draft[channelId] || 0) + 1;
    });
  }
};

// --- seed: 메시지 읽음 상태 추적 ---------------------------------------------------------------------
export const sendReadReceipt = (socket, channelId, messageId) => {
  if (socket.readyState === WebSocket.OPEN) {
    const receipt = {
      type: 'READ_RECEIPT',
      channelId,
      messageId,
      timestamp: Date.now(),
    };

    socket.send(JSON.stringify(receipt));
  }
};

// --- seed: 사용자 상태 업데이트 ----------------------------------------------------------------------
export const broadcastUserStatusChange = (socket, status) => {
  if (socket.readyState === WebSocket.OPEN) {
    const statusUpdate = {
      type: 'USER_STATUS',
      status,
      timestamp: Date.now(),
    };

    socket.send(JSON.stringify(statusUpdate));
  }
};

// --- seed: 메시지 배치 처리 --------------------------------------------------------------------------
// The seed's batcher writes chatMessagesAtom, which handleChatMessage also writes; an app uses one of the
// two. To check both side by side, the batcher here writes batchedMessagesAtom (the only change).
export const batchedMessagesAtom = atomWithImmer({});
let messageQueue = [];
const MAX_BATCH_SIZE = 50;
const BATCH_INTERVAL = 100; // 100ms

export const queueMessage = (message) => {
  messageQueue.push(message);

  if (messageQueue.length >= MAX_BATCH_SIZE) {
    flushMessageQueue();
  }
};

setInterval(flushMessageQueue, BATCH_INTERVAL);

function flushMessageQueue() {
  if (messageQueue.length === 0) return;

  const batch = [...messageQueue];
  messageQueue = [];

  setAtom(batchedMessagesAtom, (draft) => {
    batch.forEach((message) => {
      const messages = draft[message.channelId] || [];
      draft[message.channelId] = [...messages, message];
    });
  });
}

// --- seed: 양방향 무한 스크롤 (the hook as a plain function; the scroll observer is the caller) ---------
export const useChatMessages = (channelId) => {
  const messages = chatMessagesAtom;
  const setMessages = (recipe) => setAtom(chatMessagesAtom, recipe);
  let loading = false;
  const setLoading = (value) => { loading = value; };

  const loadPreviousMessages = async () => {
    if (loading) return;

    try {
      setLoading(true);
      const oldestMessageId = messages[channelId]?.[0]?.id;

      const previousMessages = await fetchMessages({
        channelId,
        before: oldestMessageId,
        limit: 20,
      });

      setMessages((draft) => {
        const currentMessages = draft[channelId] || [];
        draft[channelId] = [...previousMessages, ...currentMessages];
      });
    } finally {
      setLoading(false);
    }
  };

  return { messages: messages[channelId] || [], loading, loadPreviousMessages };
};

// --- GLUE: what the seed calls but does not define --------------------------------------------------
function subscribeToUserChannels(socket) {
  connectionLog.opens += 1;
  activeSocket = socket;
  socket.onmessage = handleWebSocketMessage;
  socketObservers.forEach((observe) => observe(socket));
  userChannels.forEach((channelId) => subscribeToChannel(socket, channelId));
}

function handleUserStatusUpdate(message) {
  const byChannel = (userStatusAtom[message.userId] ||= {});
  byChannel[message.channelId] = message.status;
}

function handleReadReceipt(message) {
  readReceiptsAtom.push(message);
}

function handleNotification(message) {
  notificationsAtom.push(message);
}

async function fetchMessages({ channelId, before, limit }) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (before !== undefined) query.set('before', String(before));
  const response = await fetch(`${API_BASE_URL}/channels/${encodeURIComponent(channelId)}/messages?${query}`, {
    headers: { Authorization: `Bearer ${authTokenForApi}` },
  });
  if (!response.ok) throw new Error(`history: HTTP ${response.status}`);
  return (await response.json()).messages;
}
