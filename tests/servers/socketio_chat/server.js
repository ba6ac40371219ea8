// A room-based chat on the socket.io library (not ours): the server chatbench's socketio wire is tested on.
//
//   node server.js [--port 0] [--host 127.0.0.1] [--ping-interval-ms 25000] [--ping-timeout-ms 20000]
//
// "join" {room} joins a room and acks {room}; "chat message" {room, text, tag, ...} is broadcast to the
// room as "message" (the sender included, as in socket.io's chat example) and acked {ok: true}.
// It prints "listening on HOST:PORT" once it accepts connections; SIGTERM closes it.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

const host = option("host", "127.0.0.1");
const port = Number(option("port", "0"));
const pingInterval = Number(option("ping-interval-ms", "25000"));
const pingTimeout = Number(option("ping-timeout-ms", "20000"));

const httpServer = http.createServer();
const io = new Server(httpServer, { transports: ["websocket"], pingInterval, pingTimeout });

io.on("connection", (socket) => {
  socket.on("join", (data, ack) => {
    const room = String((data && data.room) || "");
    socket.join(room);
    if (typeof ack === "function") ack({ room });
  });
  socket.on("chat message", (data, ack) => {
    if (!data || typeof data.room !== "string") return;
    io.to(data.room).emit("message", { ...data, from: socket.id });
    if (typeof ack === "function") ack({ ok: true });
  });
});

httpServer.listen(port, host, () => {
  const address = httpServer.address();
  console.log(`listening on ${address.address}:${address.port}`);
});

process.on("SIGTERM", () => {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
