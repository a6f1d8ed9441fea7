// Berth's dashboard: actions through the JSON API with the session
// cookie, and a launch's progress from server-sent events fed by the log.
(function () {
  "use strict";
  var notice = document.getElementById("notice");
  var progress = document.getElementById("progress");
  var progressText = document.getElementById("progress-text");
  var following = false;

  function say(message) {
    notice.textContent = message;
    notice.hidden = false;
    notice.focus();
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  // api calls the JSON API; a problem document becomes an Error whose
  // message a person can act on ("Workspace feature not available: ...").
  // A call that got no answer at all (Chromium drops requests in flight
  // when the machine's network changes, as Docker does on the machine it
  // runs workspaces on) is tried twice more when that is safe: reads, and
  // calls the API makes idempotent (opts.idempotent: Launch).
  function api(method, path, body, opts) {
    var init = { method: method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var again = method === "GET" || (opts && opts.idempotent);
    function send(attempt) {
      return fetch(path, init).catch(function (err) {
        if (again && attempt < 2) {
          return sleep(300 * (attempt + 1)).then(function () { return send(attempt + 1); });
        }
        throw new Error("Berth could not be reached (" + err.message + "); check the connection and try again");
      });
    }
    return send(0).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!res.ok) {
          var p = data || {};
          throw new Error((p.title || "Error " + res.status) + (p.detail ? ": " + p.detail : ""));
        }
        return data;
      });
    });
  }

  var steps = ["requested", "starting", "ready"];
  function showStep(ws) {
    var current = ws.status === "running" ? "ready" : ws.status === "starting" ? "starting" : "requested";
    var at = steps.indexOf(current);
    progress.querySelectorAll("li").forEach(function (li) {
      var i = steps.indexOf(li.dataset.step);
      li.className = i < at ? "done" : i === at ? "current" : "";
    });
    var words = { requested: "Requested: waiting for the provisioner…", starting: "Starting the container…", ready: "Ready: opening your workspace…" };
    progressText.textContent = ws.name + ": " + words[current];
  }

  // routed resolves once the workspace's URL is served: router-sync and
  // Traefik take a few milliseconds after the container runs. Another
  // origin (subdomain mode) cannot be asked; it gets a short grace.
  function routed(url) {
    var sameOrigin = new URL(url, location.href).origin === location.origin;
    if (!sameOrigin) {
      return sleep(500);
    }
    var deadline = Date.now() + 15000;
    function probe() {
      return fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (res) {
        return res.status !== 404;
      }, function () { return false; }).then(function (ok) {
        if (ok || Date.now() > deadline) { return; }
        return sleep(100).then(probe);
      });
    }
    return probe();
  }

  // follow shows a workspace's progress until it runs (then opens it),
  // fails (then says why) or stops.
  function follow(ws, retries) {
    if (retries === undefined) { retries = 3; }
    following = true;
    progress.hidden = false;
    showStep(ws);
    var last = ws;
    var events = new EventSource("/ui/workspaces/" + encodeURIComponent(ws.id) + "/progress");
    events.addEventListener("status", function (ev) {
      var w = JSON.parse(ev.data);
      last = w;
      showStep(w);
      if (w.status === "running") {
        events.close();
        routed(w.url).then(function () { window.location.assign(w.url); });
      } else if (w.status === "error") {
        events.close();
        progressText.textContent = w.name + " failed: " + (w.failure ? w.failure.message : "see its history");
        following = false;
      }
    });
    events.addEventListener("error", function () {
      events.close();
      // The stream ended before the workspace settled: the network, not
      // the API (Chromium drops streams when the machine's network
      // changes, as Docker's containers do). Follow again: the stream
      // starts with the state the API has now.
      var settled = last.status === "stopped" || last.status === "created" || last.status === "deleted";
      if (!settled && retries > 0) {
        setTimeout(function () { follow(last, retries - 1); }, 500);
        return;
      }
      following = false;
      setTimeout(function () { window.location.reload(); }, 1500);
    });
  }

  function busy(button, on) { if (button) { button.disabled = on; } }

  // Launch workspace: the home workspace (#launch), or one of an image
  // the catalog lets users launch (data-launch: its reference).
  document.querySelectorAll("#launch, button[data-launch]").forEach(function (button) {
    button.addEventListener("click", function () {
      busy(button, true);
      var body = button.dataset.launch ? { image: button.dataset.launch } : {};
      api("POST", "/api/v1/workspaces/launch", body, { idempotent: true }).then(follow, function (err) {
        busy(button, false);
        say(err.message);
      });
    });
  });

  document.querySelectorAll("tr[data-id] button[data-action]").forEach(function (button) {
    button.addEventListener("click", function () {
      var row = button.closest("tr");
      var path = "/api/v1/workspaces/" + encodeURIComponent(row.dataset.id);
      var action = button.dataset.action;
      if (action === "delete" && !window.confirm("Delete " + row.dataset.name + "? Its home folder is kept.")) {
        return;
      }
      var call = adminCall(action, path, button);
      if (call === null) { return; } // the admin cancelled the prompt
      busy(button, true);
      call.then(function (ws) {
        if (action === "start") { follow(ws); } else { window.location.reload(); }
      }, function (err) {
        busy(button, false);
        say(err.message);
      });
    });
  });

  // adminCall is the request for an action (null: cancelled).
  function adminCall(action, path, button) {
    switch (action) {
      case "delete": return api("DELETE", path);
      case "hold": {
        var reason = window.prompt("Why hold it? (shown to its owner and in the audit log)", "");
        return reason === null ? null : api("PATCH", path + "/lifecycle", { hold: true, hold_reason: reason });
      }
      case "release": return api("PATCH", path + "/lifecycle", { hold: false });
      case "idle": {
        var current = Number(button.dataset.idle || 0);
        var answer = window.prompt("Idle timeout, e.g. 90m or 4h (0 = the default)", current ? Math.round(current / 60) + "m" : "0");
        if (answer === null) { return null; }
        var m = /^\s*(\d+)\s*([hm]?)\s*$/.exec(answer);
        if (!m) { say("Idle timeout: write minutes or hours, e.g. 90m or 4h."); return null; }
        var seconds = Number(m[1]) * (m[2] === "h" ? 3600 : m[2] === "m" ? 60 : 1);
        return api("PATCH", path + "/lifecycle", { idle_timeout_seconds: seconds });
      }
    }
    return api("POST", path + "/" + action); // start, stop, restore
  }

  document.querySelectorAll("tr[data-ref] button[data-action=remove-image]").forEach(function (button) {
    button.addEventListener("click", function () {
      var ref = button.closest("tr").dataset.ref;
      busy(button, true);
      api("DELETE", "/api/v1/images/" + encodeURIComponent(ref)).then(function () { window.location.reload(); },
        function (err) { busy(button, false); say(err.message); });
    });
  });

  // Catalog settings: whether users may launch an image, and the default.
  document.querySelectorAll("tr[data-ref] button[data-action=launchable], tr[data-ref] button[data-action=default-image]").forEach(function (button) {
    button.addEventListener("click", function () {
      var row = button.closest("tr");
      var body = button.dataset.action === "launchable" ? { launchable: row.dataset.launchable !== "true" } : { "default": true };
      busy(button, true);
      api("PATCH", "/api/v1/images/" + encodeURIComponent(row.dataset.ref), body).then(function () { window.location.reload(); },
        function (err) { busy(button, false); say(err.message); });
    });
  });

  function onSubmit(id, build, path) {
    var form = document.getElementById(id);
    if (!form) { return; }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var button = form.querySelector("button[type=submit]");
      var body;
      try { body = build(form); } catch (e) { say("The profile is not valid JSON: " + e.message); return; }
      busy(button, true);
      api("POST", path, body).then(function () { window.location.reload(); },
        function (err) { busy(button, false); say(err.message); });
    });
  }
  onSubmit("add-image", function (f) {
    var body = { ref: f.ref.value.trim(), description: f.description.value.trim(), launchable: f.launchable.checked };
    if (f.profile.value.trim()) { body.profile = JSON.parse(f.profile.value); }
    return body;
  }, "/api/v1/images");
  onSubmit("create", function (f) {
    return {
      name: f.name.value.trim(), owner: f.owner.value.trim(), description: f.description.value.trim(), image: f.image.value,
      projects: Array.prototype.map.call(f.projects.selectedOptions, function (o) { return o.value; })
    };
  }, "/api/v1/workspaces");

  // Workspaces on their way up or down: look again shortly.
  if (document.querySelector("tr[data-status=starting], tr[data-status=stopping]")) {
    setTimeout(function () { if (!following) { window.location.reload(); } }, 2000);
  }
})();
