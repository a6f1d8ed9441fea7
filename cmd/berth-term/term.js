// The page's side of berth-term: xterm.js (3.x, Debian's libjs-xterm) on a
// websocket. Keys go up as {"type":"input"}, size changes as
// {"type":"resize"}; the shell's output comes down as binary frames.
(function () {
  "use strict";
  var base = document.body.dataset.base || "";
  var status = document.getElementById("status");
  Terminal.applyAddon(fit);
  var term = new Terminal({ cursorBlink: true, fontSize: 14 });
  term.open(document.getElementById("term"));
  term.fit();
  term.focus();
  var proto = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(proto + location.host + base + "/tty");
  ws.binaryType = "arraybuffer";
  var decoder = new TextDecoder();
  function send(m) { if (ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(m)); } }
  function show(text, state) { status.textContent = text; status.dataset.state = state; }
  ws.onopen = function () {
    show("connected", "open");
    send({ type: "resize", cols: term.cols, rows: term.rows });
  };
  ws.onmessage = function (ev) {
    term.write(typeof ev.data === "string" ? ev.data : decoder.decode(ev.data, { stream: true }));
  };
  ws.onclose = function (ev) {
    var why = ev.reason || "the workspace stopped or the connection dropped";
    show("disconnected: " + why, "closed");
    term.write("\r\n\x1b[31m[disconnected: " + why + ". Reload the page to reconnect.]\x1b[0m\r\n");
  };
  term.on("data", function (d) { send({ type: "input", data: d }); });
  term.on("resize", function (s) { send({ type: "resize", cols: s.cols, rows: s.rows }); });
  window.addEventListener("resize", function () { term.fit(); });
})();
