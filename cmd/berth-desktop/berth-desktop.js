// noVNC builds its websocket's URL from the host and a path given without
// the leading slash; the workspace's base path is wherever this page is
// served (path mode: /workspace-<name>/, subdomain mode: /).
(function () {
  var base = location.pathname.replace(/[^/]*$/, "").replace(/^\//, "");
  location.replace("vnc.html?autoconnect=true&resize=remote&reconnect=true&path=" +
    encodeURIComponent(base + "websockify"));
})();
