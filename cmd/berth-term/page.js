// The page's side of berth-term: term.js (Debian's libjs-term.js) on a
// websocket. Keys go up as {"type":"input"}, size changes as
// {"type":"resize"}; the shell's output comes down as binary frames.
(function () {
  "use strict";
  var base = document.body.dataset.base || "";
  var status = document.getElementById("status");
  var box = document.getElementById("term");
  var measure = document.getElementById("measure");

  // fit is how many columns and rows of the font fit in the box.
  function fit() {
    var cell = measure.getBoundingClientRect();
    var cw = cell.width / measure.textContent.length, ch = cell.height;
    return { cols: Math.max(20, Math.floor((box.clientWidth - 12) / cw)), rows: Math.max(5, Math.floor((box.clientHeight - 8) / ch)) };
  }

  var size = fit();
  var term = new Terminal({ cols: size.cols, rows: size.rows, cursorBlink: true, useStyle: false, screenKeys: false });
  term.open(box);
  term.focus();

  var proto = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(proto + location.host + base + "/tty");
  ws.binaryType = "arraybuffer";
  var decoder = new TextDecoder();
  function send(m) { if (ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(m)); } }
  function show(text, state) { status.textContent = text; status.dataset.state = state; }
  ws.onopen = function () {
    show("connected", "open");
    send({ type: "resize", cols: size.cols, rows: size.rows });
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
  box.addEventListener("click", function () { term.focus(); });
  window.addEventListener("resize", function () {
    size = fit();
    term.resize(size.cols, size.rows);
    send({ type: "resize", cols: size.cols, rows: size.rows });
  });
})();
